//! Renders a storage-format tree as Markdown, keeping what people search for.

use super::xhtml::{Element, Node};

/// Macros that show navigation or page furniture, not content: dropped.
const DISPLAY_ONLY: &[&str] = &[
    "toc",
    "children",
    "pagetree",
    "pagetreesearch",
    "recently-updated",
    "blog-posts",
    "contentbylabel",
    "content-by-label",
    "livesearch",
    "attachments",
    "anchor",
    "create-from-template",
    "popular-labels",
    "related-labels",
    "listlabels",
    "space-details",
    "profile",
    "profile-picture",
    "gallery",
    "include",
    "excerpt-include",
    "network",
    "recently-updated-dashboard",
    "space-attachments",
    "index",
    "navmap",
    "search",
];

/// Macros that sit inside a line of text.
const INLINE_MACROS: &[&str] = &["status", "jira", "mention", "anchor", "emoticon"];

/// Panels rendered as a blockquote naming their kind.
const PANELS: &[(&str, &str)] = &[
    ("info", "Info"),
    ("note", "Note"),
    ("warning", "Warning"),
    ("tip", "Tip"),
    ("panel", "Panel"),
    ("success", "Success"),
    ("error", "Error"),
];

/// Returns the Markdown of a parsed storage-format document.
pub(crate) fn render(nodes: &[Node]) -> String {
    let blocks = Renderer::default().blocks(nodes);
    let mut out = blocks.join("\n\n");
    out.push('\n');
    if out.trim().is_empty() {
        String::new()
    } else {
        out
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Renderer {
    /// Inside a table cell: everything must stay on one line.
    in_cell: bool,
}

fn macro_name(e: &Element) -> Option<String> {
    matches!(e.name.as_str(), "ac:structured-macro" | "ac:macro")
        .then(|| e.attr("ac:name").unwrap_or_default().to_ascii_lowercase())
}

fn param(e: &Element, name: &str) -> Option<String> {
    e.elements()
        .filter(|c| c.name == "ac:parameter")
        .find(|c| c.attr("ac:name") == Some(name))
        .map(Element::text)
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

fn is_block(e: &Element) -> bool {
    if let Some(name) = macro_name(e) {
        return !INLINE_MACROS.contains(&name.as_str());
    }
    matches!(
        e.name.as_str(),
        "p" | "div"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "ul"
            | "ol"
            | "table"
            | "pre"
            | "blockquote"
            | "hr"
            | "section"
            | "article"
            | "header"
            | "footer"
            | "dl"
            | "ac:task-list"
            | "ac:layout"
            | "ac:layout-section"
            | "ac:layout-cell"
            | "ac:adf-extension"
            | "ac:rich-text-body"
            | "ac:placeholder"
            | "ac:adf-fallback"
            | "center"
            | "figure"
            | "tr"
            | "tbody"
            | "thead"
            | "head"
            | "body"
            | "html"
    )
}

fn collapse(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = false;
    for c in text.chars() {
        if c.is_whitespace() {
            space = true;
        } else {
            if space && !out.is_empty() {
                out.push(' ');
            }
            if space && out.is_empty() && text.starts_with(char::is_whitespace) {
                out.push(' ');
            }
            space = false;
            out.push(c);
        }
    }
    if space {
        out.push(' ');
    }
    out
}

/// Wraps `inner` in `mark` on both sides, keeping the outer spaces outside the marks.
fn wrap(inner: &str, mark: &str) -> String {
    let t = inner.trim();
    if t.is_empty() {
        return inner.to_string();
    }
    let lead = if inner.starts_with(' ') { " " } else { "" };
    let trail = if inner.ends_with(' ') { " " } else { "" };
    format!("{lead}{mark}{t}{mark}{trail}")
}

fn fence_for(body: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in body.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    "`".repeat((longest + 1).max(3))
}

fn indent(text: &str, prefix: &str) -> String {
    text.lines()
        .map(|l| {
            if l.is_empty() {
                prefix.trim_end().to_string()
            } else {
                format!("{prefix}{l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Removes the indentation of the first line, which follows a list marker instead.
fn hang<'a>(indented: &'a str, pad: &str) -> &'a str {
    indented.strip_prefix(pad).unwrap_or(indented)
}

fn emoji(name: &str) -> String {
    let e = match name {
        "smile" => "🙂",
        "sad" => "🙁",
        "cheeky" => "😛",
        "laugh" => "😀",
        "wink" => "😉",
        "thumbs-up" => "👍",
        "thumbs-down" => "👎",
        "information" => "ℹ️",
        "tick" => "✅",
        "cross" => "❌",
        "warning" => "⚠️",
        "plus" => "➕",
        "minus" => "➖",
        "question" => "❓",
        "light-on" | "light-off" => "💡",
        "yellow-star" | "red-star" | "green-star" | "blue-star" => "⭐",
        "heart" => "❤️",
        "broken-heart" => "💔",
        _ => return format!(":{name}:"),
    };
    e.to_string()
}

impl Renderer {
    fn blocks(self, nodes: &[Node]) -> Vec<String> {
        let mut out = Vec::new();
        let mut run: Vec<&Node> = Vec::new();
        for node in nodes {
            docbrain_core::give_way();
            match node {
                Node::Element(e) if is_block(e) => {
                    self.flush(&mut run, &mut out);
                    out.extend(self.block(e));
                }
                _ => run.push(node),
            }
        }
        self.flush(&mut run, &mut out);
        out
    }

    fn flush(self, run: &mut Vec<&Node>, out: &mut Vec<String>) {
        if run.is_empty() {
            return;
        }
        let text: String = run.iter().map(|n| self.inline_node(n)).collect();
        run.clear();
        let para = text
            .lines()
            .map(str::trim)
            .collect::<Vec<_>>()
            .join("\n")
            .trim()
            .to_string();
        if !para.is_empty() {
            out.push(para);
        }
    }

    fn block(self, e: &Element) -> Vec<String> {
        if let Some(name) = macro_name(e) {
            return self.macro_block(e, &name);
        }
        match e.name.as_str() {
            h @ ("h1" | "h2" | "h3" | "h4" | "h5" | "h6") => {
                let level = usize::from(h.as_bytes()[1] - b'0');
                let text = collapse(&self.inline(&e.children)).trim().to_string();
                if text.is_empty() {
                    Vec::new()
                } else if self.in_cell {
                    vec![format!("**{text}**")]
                } else {
                    vec![format!("{} {text}", "#".repeat(level))]
                }
            }
            "ul" | "ol" => vec![self.list(e)],
            "table" => vec![self.table(e)],
            "pre" => vec![self.code(&e.text(), None)],
            "blockquote" => {
                let body = self.blocks(&e.children).join("\n\n");
                if body.is_empty() {
                    Vec::new()
                } else {
                    vec![indent(&body, "> ")]
                }
            }
            "hr" => vec!["---".into()],
            "ac:task-list" => vec![self.tasks(e)],
            "ac:placeholder" | "head" | "script" | "style" | "title" => Vec::new(),
            "ac:adf-extension" => e
                .child("ac:adf-fallback")
                .map(|f| self.blocks(&f.children))
                .unwrap_or_default(),
            _ => self.blocks(&e.children),
        }
    }

    fn code(self, body: &str, language: Option<&str>) -> String {
        if self.in_cell {
            let flat = body.lines().collect::<Vec<_>>().join("<br>");
            return format!("`{flat}`");
        }
        let fence = fence_for(body);
        let body = body.strip_suffix('\n').unwrap_or(body);
        format!("{fence}{}\n{body}\n{fence}", language.unwrap_or(""))
    }

    fn macro_block(self, e: &Element, name: &str) -> Vec<String> {
        if DISPLAY_ONLY.contains(&name) {
            return Vec::new();
        }
        let rich = || {
            e.child("ac:rich-text-body")
                .map(|b| self.blocks(&b.children))
                .unwrap_or_default()
        };
        let plain = || e.child("ac:plain-text-body").map(Element::text);
        match name {
            "code" | "noformat" | "code-block" => {
                let language = (name != "noformat")
                    .then(|| param(e, "language"))
                    .flatten()
                    .filter(|l| l != "none");
                let mut out = Vec::new();
                if let Some(title) = param(e, "title") {
                    out.push(format!("**{title}**"));
                }
                out.push(self.code(&plain().unwrap_or_default(), language.as_deref()));
                out
            }
            "expand" => {
                let title = param(e, "title").unwrap_or_else(|| "Expand".into());
                let mut out = vec![format!("**{title}**")];
                out.extend(rich());
                out
            }
            _ => {
                if let Some((_, label)) = PANELS.iter().find(|(n, _)| *n == name) {
                    return self.panel(label, param(e, "title"), rich());
                }
                let body = rich();
                if !body.is_empty() {
                    return body;
                }
                plain()
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty())
                    .into_iter()
                    .collect()
            }
        }
    }

    fn panel(self, label: &str, title: Option<String>, body: Vec<String>) -> Vec<String> {
        if self.in_cell {
            let text = body.join(" ");
            return vec![format!(
                "{label}: {}{text}",
                title.map(|t| t + ": ").unwrap_or_default()
            )];
        }
        let mut parts = body;
        let head = match title {
            Some(t) => format!("**{label}:** {t}"),
            None if parts
                .first()
                .is_some_and(|p| !p.starts_with(['#', '|', '`', '-', '>'])) =>
            {
                format!("**{label}:** {}", parts.remove(0))
            }
            None => format!("**{label}**"),
        };
        parts.insert(0, head);
        vec![indent(&parts.join("\n\n"), "> ")]
    }

    fn inline(self, nodes: &[Node]) -> String {
        nodes.iter().map(|n| self.inline_node(n)).collect()
    }

    fn inline_node(self, node: &Node) -> String {
        match node {
            Node::Text(t) => collapse(&t.replace('\u{a0}', " ")),
            Node::Cdata(t) => t.clone(),
            Node::Element(e) => self.inline_element(e),
        }
    }

    fn inline_element(self, e: &Element) -> String {
        if let Some(name) = macro_name(e) {
            return match name.as_str() {
                "status" => param(e, "title").unwrap_or_default(),
                "jira" => param(e, "key")
                    .or_else(|| param(e, "jqlquery").map(|q| format!("Jira issues: {q}")))
                    .unwrap_or_default(),
                _ => self.block(e).join(" "),
            };
        }
        match e.name.as_str() {
            "strong" | "b" => wrap(&self.inline(&e.children), "**"),
            "em" | "i" => wrap(&self.inline(&e.children), "_"),
            "del" | "s" | "strike" => wrap(&self.inline(&e.children), "~~"),
            "code" | "tt" | "kbd" => {
                let t = e.text();
                if t.trim().is_empty() {
                    t
                } else {
                    format!("`{}`", t.trim())
                }
            }
            "a" => {
                let text = collapse(&self.inline(&e.children)).trim().to_string();
                match e.attr("href").filter(|h| !h.is_empty()) {
                    Some(href) if text.is_empty() => format!("<{href}>"),
                    Some(href) => format!("[{text}]({href})"),
                    None => text,
                }
            }
            "br" => {
                if self.in_cell {
                    "<br>".into()
                } else {
                    "\n".into()
                }
            }
            "img" => {
                let src = e.attr("src").unwrap_or_default();
                let file = src.rsplit('/').next().unwrap_or(src);
                image(file, e.attr("alt"))
            }
            "ac:link" => self.link(e),
            "ac:image" => {
                let target = e
                    .child("ri:attachment")
                    .and_then(|a| a.attr("ri:filename"))
                    .or_else(|| e.child("ri:url").and_then(|u| u.attr("ri:value")))
                    .unwrap_or("image");
                let caption = e
                    .child("ac:caption")
                    .map(|c| collapse(&c.text()).trim().to_string());
                let alt = e
                    .attr("ac:alt")
                    .or_else(|| e.attr("ac:title"))
                    .map(str::to_string)
                    .or(caption);
                image(target, alt.as_deref())
            }
            "ac:emoticon" => e
                .attr("ac:emoji-fallback")
                .filter(|f| !f.is_empty())
                .map_or_else(
                    || emoji(e.attr("ac:name").unwrap_or("smile")),
                    str::to_string,
                ),
            "time" => e.attr("datetime").map_or_else(|| e.text(), str::to_string),
            "ac:placeholder" | "ac:parameter" | "script" | "style" => String::new(),
            name if name.starts_with("ri:") => String::new(),
            _ if is_block(e) => {
                let sep = if self.in_cell { "<br>" } else { "\n" };
                format!("{sep}{}{sep}", self.block(e).join(sep))
            }
            _ => self.inline(&e.children),
        }
    }

    fn link(self, e: &Element) -> String {
        let body = e
            .child("ac:link-body")
            .map(|b| collapse(&self.inline(&b.children)).trim().to_string())
            .or_else(|| {
                e.child("ac:plain-text-link-body")
                    .map(|b| b.text().trim().to_string())
            })
            .filter(|b| !b.is_empty());
        let anchor = e
            .attr("ac:anchor")
            .map(|a| format!("#{a}"))
            .unwrap_or_default();
        if let Some(user) = e.child("ri:user") {
            let who = user
                .attr("ri:username")
                .or_else(|| user.attr("ri:userkey"))
                .or_else(|| user.attr("ri:account-id"))
                .unwrap_or("user");
            return body.map_or_else(
                || format!("@{who}"),
                |b| format!("@{}", b.trim_start_matches('@')),
            );
        }
        let target = if let Some(page) = e.child("ri:page").or_else(|| e.child("ri:blog-post")) {
            let title = page.attr("ri:content-title").unwrap_or_default();
            match page.attr("ri:space-key") {
                Some(space) => format!("{space}:{title}"),
                None => title.to_string(),
            }
        } else if let Some(a) = e.child("ri:attachment") {
            a.attr("ri:filename").unwrap_or_default().to_string()
        } else if let Some(u) = e.child("ri:url") {
            u.attr("ri:value").unwrap_or_default().to_string()
        } else if let Some(s) = e.child("ri:space") {
            format!("space {}", s.attr("ri:space-key").unwrap_or_default())
        } else {
            String::new()
        };
        let target = format!("{target}{anchor}");
        match body {
            Some(text) if target.is_empty() => text,
            Some(text) => format!("[{text}](<{target}>)"),
            None if target.is_empty() => String::new(),
            None => format!("[{target}](<{target}>)"),
        }
    }

    fn list(self, e: &Element) -> String {
        let ordered = e.name == "ol";
        let mut n: u64 = e.attr("start").and_then(|s| s.parse().ok()).unwrap_or(1);
        let mut items = Vec::new();
        for li in e.elements() {
            let marker = if ordered {
                let m = format!("{n}. ");
                n += 1;
                m
            } else {
                "- ".to_string()
            };
            let blocks = if li.name == "li" {
                self.blocks(&li.children)
            } else {
                self.block(li)
            };
            let pad = " ".repeat(marker.len());
            let mut item = String::new();
            for (i, block) in blocks.iter().enumerate() {
                if i == 0 {
                    item.push_str(&marker);
                    item.push_str(hang(&indent(block, &pad), &pad));
                } else {
                    item.push('\n');
                    item.push_str(&indent(block, &pad));
                }
            }
            if item.is_empty() {
                item = marker.trim_end().to_string();
            }
            items.push(item);
        }
        if self.in_cell {
            return items.join("<br>");
        }
        items.join("\n")
    }

    fn tasks(self, e: &Element) -> String {
        let mut items = Vec::new();
        for task in e.elements().filter(|t| t.name == "ac:task") {
            let done = task
                .child("ac:task-status")
                .is_some_and(|s| s.text().trim() == "complete");
            let body = task
                .child("ac:task-body")
                .map(|b| self.blocks(&b.children))
                .unwrap_or_default();
            let mut item = format!("- [{}] ", if done { 'x' } else { ' ' });
            for (i, block) in body.iter().enumerate() {
                if i == 0 {
                    item.push_str(hang(&indent(block, "  "), "  "));
                } else {
                    item.push('\n');
                    item.push_str(&indent(block, "  "));
                }
            }
            items.push(item.trim_end().to_string());
        }
        items.join(if self.in_cell { "<br>" } else { "\n" })
    }

    fn table(self, e: &Element) -> String {
        let cell_renderer = Renderer { in_cell: true };
        let mut rows: Vec<(Vec<String>, bool)> = Vec::new();
        let mut trs = Vec::new();
        collect_rows(e, &mut trs);
        for tr in trs {
            let mut cells = Vec::new();
            let mut header = false;
            for cell in tr.elements().filter(|c| c.name == "td" || c.name == "th") {
                header |= cell.name == "th";
                let text = cell_renderer
                    .blocks(&cell.children)
                    .join("<br>")
                    .replace('\n', "<br>")
                    .replace('|', "\\|");
                let span: usize = cell
                    .attr("colspan")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(1)
                    .clamp(1, 64);
                cells.push(text.trim().to_string());
                cells.extend(std::iter::repeat_n(String::new(), span - 1));
            }
            if !cells.is_empty() {
                rows.push((cells, header));
            }
        }
        if self.in_cell {
            return rows
                .iter()
                .map(|(cells, _)| cells.join(" / "))
                .collect::<Vec<_>>()
                .join("<br>");
        }
        let width = rows.iter().map(|(c, _)| c.len()).max().unwrap_or(0);
        if width == 0 {
            return String::new();
        }
        let line = |cells: &[String]| {
            let mut padded: Vec<&str> = cells.iter().map(String::as_str).collect();
            padded.resize(width, "");
            format!("| {} |", padded.join(" | "))
        };
        let mut out = Vec::new();
        let has_header = rows.first().is_some_and(|(_, h)| *h);
        let body_start = if has_header {
            out.push(line(&rows[0].0));
            1
        } else {
            out.push(line(&vec![String::new(); width]));
            0
        };
        out.push(format!("|{}", " --- |".repeat(width)));
        for (cells, _) in &rows[body_start..] {
            out.push(line(cells));
        }
        out.join("\n")
    }
}

fn collect_rows<'a>(e: &'a Element, out: &mut Vec<&'a Element>) {
    for child in e.elements() {
        match child.name.as_str() {
            "tr" => out.push(child),
            "thead" | "tbody" | "tfoot" => collect_rows(child, out),
            _ => {}
        }
    }
}

fn image(target: &str, alt: Option<&str>) -> String {
    match alt.map(str::trim).filter(|a| !a.is_empty() && *a != target) {
        Some(alt) => format!("[Image: {target} — {alt}]"),
        None => format!("[Image: {target}]"),
    }
}
