"""The API's docs page: one self-contained HTML page that renders `/api/v1/openapi.json`.

FastAPI's own docs pages load Swagger UI or ReDoc from a CDN; this app promises to stay
local, so the page has no asset from anywhere (its script is inline; the page's CSP,
`connect-src 'self'`, allows only the fetch of the OpenAPI document beside it).
"""

from __future__ import annotations

DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>OllamaStack REST API</title>
<style>
body { font: 15px/1.5 system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; }
h2 { border-bottom: 1px solid #ccc; }
.method { display: inline-block; min-width: 4.5rem; font-weight: bold; }
pre { background: #f4f4f4; padding: .5rem; overflow-x: auto; }
</style></head>
<body>
<h1>OllamaStack REST API</h1>
<p>JSON in and out. With logins on, send <code>Authorization: Bearer &lt;token&gt;</code>
(make a token on the page or with <code>/create_api_token</code>). The OpenAPI document is
<a href="openapi.json">openapi.json</a>.</p>
<div id="routes">Loading…</div>
<script>
(async () => {
  const root = document.getElementById("routes");
  const spec = await (await fetch("openapi.json")).json();
  root.textContent = "";
  const add = (parent, tag, text) => {
    const node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    parent.appendChild(node);
    return node;
  };
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const section = add(root, "section");
      const title = add(section, "h2");
      add(title, "span", method.toUpperCase()).className = "method";
      add(title, "code", path);
      if (op.summary) add(section, "p", op.summary);
      if (op.description) add(section, "p", op.description);
      const body = op.requestBody && op.requestBody.content["application/json"];
      if (body) {
        const ref = body.schema.$ref ? body.schema.$ref.split("/").pop() : "";
        const schema = ref ? spec.components.schemas[ref] : body.schema;
        add(section, "p", "Body:");
        add(section, "pre", JSON.stringify(schema.properties || schema, null, 2));
      }
    }
  }
})();
</script>
</body></html>
"""
