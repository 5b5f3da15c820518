"""The page: layout (`layout.build_ui`) and the handlers of its tabs."""
