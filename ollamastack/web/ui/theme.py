"""How the page looks and answers the keyboard: a theme that meets WCAG AA contrast, the
phone layout, and the few page-wide keys (Esc stops an answer).

Gradio's default theme fails contrast checks (hint text #bbbbc2 on white is 1.9:1, white on
its orange primary 2.8:1); every colour here is a Tailwind shade chosen for at least 4.5:1
against what it sits on. Checked by axe-core in tests/test_browser_page.py.
"""

from __future__ import annotations

import gradio as gr

PHONE_WIDTH = 768  # below this the page is laid out for a phone (sidebar closed)


def page_theme() -> gr.themes.Base:
    """Blue-700 primary (white on it 6.7:1), red-700 stop (6.5:1), grey-600 hints (7.6:1)."""
    return gr.themes.Default(
        primary_hue=gr.themes.colors.blue,
        neutral_hue=gr.themes.colors.gray,
        # the visitor's own fonts: the page fetches nothing from other hosts
        font=["system-ui", "sans-serif"],
        font_mono=["ui-monospace", "monospace"],
    ).set(
        button_primary_background_fill="*primary_700",
        button_primary_background_fill_hover="*primary_800",
        button_primary_background_fill_dark="*primary_600",
        button_primary_text_color="white",
        button_primary_border_color="*primary_700",
        button_cancel_background_fill="*error_700",
        button_cancel_background_fill_hover="*error_800",
        button_cancel_text_color="white",
        button_cancel_border_color="*error_700",
        body_text_color_subdued="*neutral_600",
        block_info_text_color="*neutral_600",
        block_label_text_color="*neutral_700",
        block_title_text_color="*neutral_800",
        input_placeholder_color="*neutral_500",
        link_text_color="*primary_700",
        link_text_color_visited="*primary_800",
        checkbox_label_text_color="*neutral_800",
        color_accent="*primary_700",  # the selected tab's text, among others
        color_accent_soft="*primary_100",
        slider_color="*primary_700",
    )


CSS = f"""
#status {{ font-size: var(--text-sm); min-height: 0; }}
#status p {{ margin: 0; }}
/* one-line Markdown blocks: never a scroll box (keyboard users could not reach it) */
#status, #status *, .note-bar, .note-bar *, #who, #who * {{ overflow: visible !important; }}
#top-bar {{ align-items: center; gap: 8px; flex-wrap: nowrap; }}
#top-bar > * {{ min-width: 0; }}
#chat {{ flex-grow: 1; }}
#chat .title[role=button] button {{ pointer-events: none; }}  /* see `mend` in HEAD */
#chat pre, #chat pre code {{ color: var(--body-text-color) !important;
  background: var(--background-fill-secondary) !important; }}
#chat .thought-group .message-content {{ opacity: 1; }}  /* Gradio's 0.8 fails contrast */
/* an attached image's Share would post it to Hugging Face: this page sends nothing away */
#chat button[aria-label="Share"] {{ display: none !important; }}
/* each file in the box with its name (see `nameBoxFiles` in HEAD) */
#message .thumbnail-wrapper[data-name] {{ display: inline-flex; align-items: center; gap: 4px; }}
#message .thumbnail-wrapper[data-name]::after {{ content: attr(data-name);
  font-size: var(--text-sm); max-width: 12em; overflow: hidden; text-overflow: ellipsis;
  white-space: nowrap; }}
#composer {{ position: sticky; bottom: 0; z-index: 5; background: var(--body-background-fill);
             padding-top: 4px; }}
#actions {{ gap: 4px; flex-wrap: nowrap; justify-content: flex-start; }}
#actions button {{ flex: 0 0 auto; min-width: 0; padding: 2px 10px; }}
.note-bar {{ border: 1px solid var(--border-color-primary); border-radius: 8px;
             padding: 6px 10px; background: var(--background-fill-secondary); }}
.note-bar p {{ margin: 0; }}
#who {{ font-size: var(--text-sm); }}
#app-name h1 {{ font-size: var(--text-xxl); margin: 0 0 4px; }}
/* a bar over the box (a note, the queue, leaving, an approval), files in the box and a
   status line on more lines (--status-height, measured in HEAD) take room from the chat, so
   the box stays on screen; hidden bars are not in the page at all */
#approval:not(:has(.approval)) {{ display: none !important; }}  /* no call waiting */
.gradio-container {{ --bars: 0px; --files: 0px; }}
.gradio-container:has(#notice, #queued-bar, #leave-bar) {{ --bars: 70px; }}
.gradio-container:has(#approval .approval) {{ --bars: 170px; }}
.gradio-container:has(#message .thumbnail-item) {{ --files: 48px; }}
#chat {{ height: calc(64vh - var(--bars) - var(--files) - var(--status-height, 23px) + 23px)
  !important; }}
@media (max-width: {PHONE_WIDTH - 1}px) {{
  .gradio-container {{ padding: 0 6px !important; }}
  .gradio-container:has(#notice, #queued-bar, #leave-bar) {{ --bars: 90px; }}
  .gradio-container:has(#approval .approval) {{ --bars: 170px; }}
  #chat {{ height: calc(100dvh - 234px - var(--status-height, 46px) - var(--bars)
    - var(--files)) !important; min-height: 200px; }}
  #top-bar {{ flex-wrap: wrap; }}
  #actions button {{ padding: 2px 8px; font-size: var(--text-sm); }}
}}
"""

# Esc stops the answer (the composer's Stop button, present only while answering); below
# PHONE_WIDTH the conversation list starts closed, so the chat is what a phone shows first.
HEAD = f"""<script>
(() => {{
  document.addEventListener("keydown", (event) => {{
    if (event.key !== "Escape") return;
    const stop = document.querySelector("#message .stop-button, #message button.stop");
    if (stop) {{ event.preventDefault(); stop.click(); }}
  }});
  // On a phone the list covers the chat: it closes once a conversation is chosen.
  window.closeListOnPhone = () => {{
    const list = document.querySelector(".sidebar:not(.right)");
    if (window.innerWidth < {PHONE_WIDTH} && list?.classList.contains("open")) {{
      list.querySelector(".toggle-button")?.click();
    }}
  }};
  // Gradio names both sidebars' toggles "Toggle Sidebar": say which is which.
  const NAMES = {{left: "Show or hide the conversations", right: "Show or hide chat settings"}};
  const arrange = () => {{
    const sidebars = document.querySelectorAll(".sidebar");
    if (sidebars.length < 2) return false;
    for (const sidebar of sidebars) {{
      const side = sidebar.classList.contains("right") ? "right" : "left";
      sidebar.querySelector(".toggle-button")?.setAttribute("aria-label", NAMES[side]);
      if (side === "left" && window.innerWidth < {PHONE_WIDTH}
          && sidebar.classList.contains("open")) {{
        sidebar.querySelector(".toggle-button")?.click();
      }}
    }}
    return true;
  }};
  // Gradio's chat puts a nameless arrow button inside each step's title, itself a button:
  // the title is the control, so the arrow is switched off (clicks pass through to it).
  // A code block wider than the chat scrolls, so it takes the focus to be scrolled by keys.
  let boxFiles = [];  // the names of the files in the message box (`nameBoxFiles`)
  const mend = () => {{
    for (const arrow of document.querySelectorAll(
        "#chat .title[role=button] button:not([disabled])")) {{
      arrow.disabled = true;
      arrow.setAttribute("aria-hidden", "true");
    }}
    for (const pre of document.querySelectorAll("#chat pre:not([tabindex])")) {{
      if (pre.scrollWidth > pre.clientWidth) pre.setAttribute("tabindex", "0");
    }}
    // The box shows its files as list items outside any list (each is a group), and a
    // document as a bare icon: each is named.
    for (const file of document.querySelectorAll("#message [role=listitem]")) {{
      file.setAttribute("role", "group");
    }}
    document.querySelectorAll("#message .thumbnail-wrapper").forEach((file, i) => {{
      const name = boxFiles[i];
      if (!name || file.dataset.name === name) return;
      file.dataset.name = name;
      file.title = name;
      file.setAttribute("aria-label", name);
    }});
    // A picture in a message is a nameless button around an image without alt text: both
    // take the file's name (the last part of its address).
    for (const image of document.querySelectorAll("#chat .image-container img")) {{
      const named = `Picture ${{decodeURIComponent(image.src.split("/").pop() || "")}}`;
      if (image.alt === named) continue;
      image.alt = named;
      image.closest("button")?.setAttribute("aria-label", named);
    }}
    // The message box labels its Send button "Submit": named by the word it shows.
    const send = document.querySelector("#message .submit-button");
    const word = send?.textContent.trim();
    if (word && send.getAttribute("aria-label") !== word) send.setAttribute("aria-label", word);
  }};
  new MutationObserver(mend).observe(document.documentElement, {{childList: true,
                                                                   subtree: true}});
  // The box's value changed: the names of its files, in the order it shows them.
  window.nameBoxFiles = (value) => {{
    boxFiles = (value?.files ?? []).map(
      (file) => file.orig_name || String(file.path ?? "").split("/").pop());
    mend();
  }};
  // The chat's height leaves room for the status line, however many lines it takes.
  const follow = () => {{
    const bar = document.querySelector("#top-bar");
    if (!bar) return false;
    new ResizeObserver(() => document.documentElement.style.setProperty(
      "--status-height", `${{bar.offsetHeight}}px`)).observe(bar);
    return true;
  }};
  const started = Date.now();
  const poll = setInterval(() => {{
    if (arrange() || Date.now() - started > 10000) clearInterval(poll);
  }}, 50);
  const waiting = setInterval(() => {{
    if (follow() || Date.now() - started > 10000) clearInterval(waiting);
  }}, 50);
}})();
</script>"""
