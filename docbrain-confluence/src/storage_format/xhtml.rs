//! A lenient XHTML reader for Confluence storage format.
//!
//! Storage format is "almost XML": it uses HTML named entities (`&nbsp;`, `&rsquo;`) that XML
//! does not define, and exports in the wild contain unclosed and stray tags. A strict XML parser
//! rejects such pages; this reader never fails. It builds a tree, closes what is left open,
//! ignores stray closing tags, and decodes entities it knows (unknown ones stay as written).

use std::collections::HashMap;

/// A node of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    /// An element with its lowercase name, attributes and children.
    Element(Element),
    /// Text with entities decoded.
    Text(String),
    /// A CDATA section, byte for byte.
    Cdata(String),
}

/// An element.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Element {
    pub(crate) name: String,
    pub(crate) attrs: Vec<(String, String)>,
    pub(crate) children: Vec<Node>,
}

impl Element {
    /// Returns an attribute's value by (lowercase) name.
    pub(crate) fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Returns the child elements.
    pub(crate) fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            _ => None,
        })
    }

    /// Returns the first child element named `name`.
    pub(crate) fn child(&self, name: &str) -> Option<&Element> {
        self.elements().find(|e| e.name == name)
    }

    /// Returns all text below this element (text and CDATA), unformatted.
    pub(crate) fn text(&self) -> String {
        let mut out = String::new();
        collect_text(&self.children, &mut out);
        out
    }
}

fn collect_text(nodes: &[Node], out: &mut String) {
    for n in nodes {
        match n {
            Node::Text(t) | Node::Cdata(t) => out.push_str(t),
            Node::Element(e) => collect_text(&e.children, out),
        }
    }
}

/// Elements that never have content.
const VOID: &[&str] = &[
    "br", "hr", "img", "col", "meta", "link", "input", "area", "base", "wbr", "source",
];

/// Parses storage-format XHTML into a list of top-level nodes. Never fails.
pub(crate) fn parse(input: &str) -> Vec<Node> {
    let mut stack: Vec<Element> = vec![Element::default()];
    let mut rest = input;
    while !rest.is_empty() {
        docbrain_core::give_way();
        let Some(lt) = rest.find('<') else {
            push_text(&mut stack, rest);
            break;
        };
        if lt > 0 {
            push_text(&mut stack, &rest[..lt]);
            rest = &rest[lt..];
        }
        if let Some(after) = rest.strip_prefix("<![CDATA[") {
            let (body, next) = after.split_once("]]>").unwrap_or((after, ""));
            push_node(&mut stack, Node::Cdata(body.to_string()));
            rest = next;
        } else if let Some(after) = rest.strip_prefix("<!--") {
            rest = after.split_once("-->").map_or("", |(_, n)| n);
        } else if rest.starts_with("<!") || rest.starts_with("<?") {
            rest = rest.split_once('>').map_or("", |(_, n)| n);
        } else if let Some(after) = rest.strip_prefix("</") {
            let (name, next) = after.split_once('>').unwrap_or((after, ""));
            close(&mut stack, &name.trim().to_ascii_lowercase());
            rest = next;
        } else {
            match open_tag(&rest[1..]) {
                Some((element, self_closing, next)) => {
                    let void = self_closing || VOID.contains(&element.name.as_str());
                    if void {
                        push_node(&mut stack, Node::Element(element));
                    } else {
                        stack.push(element);
                    }
                    rest = next;
                }
                None => {
                    // A lone '<' that starts no tag is text.
                    push_text(&mut stack, "<");
                    rest = &rest[1..];
                }
            }
        }
    }
    while stack.len() > 1 {
        pop(&mut stack);
    }
    stack.pop().map(|root| root.children).unwrap_or_default()
}

fn push_node(stack: &mut [Element], node: Node) {
    if let Some(top) = stack.last_mut() {
        top.children.push(node);
    }
}

fn push_text(stack: &mut [Element], raw: &str) {
    let text = decode_entities(raw);
    if let Some(top) = stack.last_mut() {
        if let Some(Node::Text(prev)) = top.children.last_mut() {
            prev.push_str(&text);
        } else {
            top.children.push(Node::Text(text));
        }
    }
}

fn pop(stack: &mut Vec<Element>) {
    if stack.len() > 1 {
        if let Some(done) = stack.pop() {
            push_node(stack, Node::Element(done));
        }
    }
}

/// Closes the innermost open element named `name`, closing any left open inside it; a closing
/// tag with no open element of its name is ignored.
fn close(stack: &mut Vec<Element>, name: &str) {
    if let Some(depth) = stack.iter().skip(1).rposition(|e| e.name == name) {
        while stack.len() > depth + 1 {
            pop(stack);
        }
    }
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, ':' | '-' | '_' | '.')
}

/// Parses an opening tag after its `<`; returns the element, whether it self-closes, and the
/// input after the tag. `None` when the text does not start a tag name.
fn open_tag(s: &str) -> Option<(Element, bool, &str)> {
    let name_len = s.find(|c: char| !is_name_char(c)).unwrap_or(s.len());
    if name_len == 0 || !s.starts_with(|c: char| c.is_alphabetic()) {
        return None;
    }
    let mut element = Element {
        name: s[..name_len].to_ascii_lowercase(),
        ..Element::default()
    };
    let mut rest = &s[name_len..];
    loop {
        rest = rest.trim_start();
        if let Some(next) = rest.strip_prefix("/>") {
            return Some((element, true, next));
        }
        if let Some(next) = rest.strip_prefix('>') {
            return Some((element, false, next));
        }
        if rest.is_empty() {
            return Some((element, false, rest));
        }
        let key_len = rest
            .find(|c: char| c.is_whitespace() || matches!(c, '=' | '>' | '/'))
            .unwrap_or(rest.len());
        if key_len == 0 {
            rest = &rest[rest.chars().next().map_or(0, char::len_utf8)..];
            continue;
        }
        let key = rest[..key_len].to_ascii_lowercase();
        rest = rest[key_len..].trim_start();
        let mut value = String::new();
        if let Some(after) = rest.strip_prefix('=') {
            let after = after.trim_start();
            let (raw, next) = match after.chars().next() {
                Some(q @ ('"' | '\'')) => {
                    let body = &after[1..];
                    body.split_once(q).unwrap_or((body, ""))
                }
                _ => {
                    let end = after
                        .find(|c: char| c.is_whitespace() || c == '>')
                        .unwrap_or(after.len());
                    (&after[..end], &after[end..])
                }
            };
            value = decode_entities(raw);
            rest = next;
        }
        element.attrs.push((key, value));
    }
}

/// Decodes `&name;`, `&#NN;` and `&#xHH;`; unknown or malformed references stay as written.
pub(crate) fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let decoded = rest[1..]
            .find(';')
            .filter(|&end| end > 0 && end <= 32)
            .and_then(|end| decode_one(&rest[1..=end]).map(|c| (c, end + 2)));
        match decoded {
            Some((text, used)) => {
                out.push_str(&text);
                rest = &rest[used..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn decode_one(name: &str) -> Option<String> {
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        return char::from_u32(code)
            .filter(|c| *c != '\0')
            .map(String::from);
    }
    ENTITIES.with(|m| m.get(name).map(|c| (*c).to_string()))
}

thread_local! {
    static ENTITIES: HashMap<&'static str, &'static str> = [
        ("amp", "&"), ("lt", "<"), ("gt", ">"), ("quot", "\""), ("apos", "'"),
        ("nbsp", "\u{a0}"), ("ensp", "\u{2002}"), ("emsp", "\u{2003}"), ("thinsp", "\u{2009}"),
        ("ndash", "–"), ("mdash", "—"), ("hellip", "…"), ("bull", "•"), ("middot", "·"),
        ("lsquo", "‘"), ("rsquo", "’"), ("sbquo", "‚"), ("ldquo", "“"), ("rdquo", "”"),
        ("bdquo", "„"), ("laquo", "«"), ("raquo", "»"), ("lsaquo", "‹"), ("rsaquo", "›"),
        ("copy", "©"), ("reg", "®"), ("trade", "™"), ("deg", "°"), ("plusmn", "±"),
        ("times", "×"), ("divide", "÷"), ("micro", "µ"), ("para", "¶"), ("sect", "§"),
        ("cent", "¢"), ("pound", "£"), ("euro", "€"), ("yen", "¥"), ("curren", "¤"),
        ("frac12", "½"), ("frac14", "¼"), ("frac34", "¾"), ("sup1", "¹"), ("sup2", "²"),
        ("sup3", "³"), ("iexcl", "¡"), ("iquest", "¿"), ("shy", "\u{ad}"), ("macr", "¯"),
        ("acute", "´"), ("cedil", "¸"), ("ordf", "ª"), ("ordm", "º"), ("not", "¬"),
        ("larr", "←"), ("rarr", "→"), ("uarr", "↑"), ("darr", "↓"), ("harr", "↔"),
        ("lArr", "⇐"), ("rArr", "⇒"), ("hArr", "⇔"), ("le", "≤"), ("ge", "≥"), ("ne", "≠"),
        ("asymp", "≈"), ("infin", "∞"), ("minus", "−"), ("check", "✓"), ("dagger", "†"),
        ("Agrave", "À"), ("Aacute", "Á"), ("Acirc", "Â"), ("Atilde", "Ã"), ("Auml", "Ä"),
        ("Aring", "Å"), ("AElig", "Æ"), ("Ccedil", "Ç"), ("Egrave", "È"), ("Eacute", "É"),
        ("Ecirc", "Ê"), ("Euml", "Ë"), ("Igrave", "Ì"), ("Iacute", "Í"), ("Icirc", "Î"),
        ("Iuml", "Ï"), ("Ntilde", "Ñ"), ("Ograve", "Ò"), ("Oacute", "Ó"), ("Ocirc", "Ô"),
        ("Otilde", "Õ"), ("Ouml", "Ö"), ("Oslash", "Ø"), ("Ugrave", "Ù"), ("Uacute", "Ú"),
        ("Ucirc", "Û"), ("Uuml", "Ü"), ("Yacute", "Ý"), ("szlig", "ß"), ("agrave", "à"),
        ("aacute", "á"), ("acirc", "â"), ("atilde", "ã"), ("auml", "ä"), ("aring", "å"),
        ("aelig", "æ"), ("ccedil", "ç"), ("egrave", "è"), ("eacute", "é"), ("ecirc", "ê"),
        ("euml", "ë"), ("igrave", "ì"), ("iacute", "í"), ("icirc", "î"), ("iuml", "ï"),
        ("ntilde", "ñ"), ("ograve", "ò"), ("oacute", "ó"), ("ocirc", "ô"), ("otilde", "õ"),
        ("ouml", "ö"), ("oslash", "ø"), ("ugrave", "ù"), ("uacute", "ú"), ("ucirc", "û"),
        ("uuml", "ü"), ("yacute", "ý"), ("yuml", "ÿ"), ("alpha", "α"), ("beta", "β"),
        ("gamma", "γ"), ("delta", "δ"), ("lambda", "λ"), ("mu", "μ"), ("pi", "π"),
        ("sigma", "σ"), ("omega", "ω"), ("Delta", "Δ"), ("Omega", "Ω"), ("zwj", "\u{200d}"),
        ("zwnj", "\u{200c}"), ("lrm", "\u{200e}"), ("rlm", "\u{200f}"),
    ]
    .into_iter()
    .collect();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_named_numeric_and_unknown_entities() {
        assert_eq!(
            decode_entities("a &amp; b &lt;c&gt; &nbsp;&rsquo;&#8212;&#x27;"),
            "a & b <c> \u{a0}’—'"
        );
        assert_eq!(
            decode_entities("&bogus; & &#xZZ; &#0;"),
            "&bogus; & &#xZZ; &#0;"
        );
    }

    #[test]
    fn builds_a_tree_and_recovers_from_bad_markup() {
        let nodes = parse("<p class=x>Hi <b>there<br>you</p></b><ac:parameter ac:name=\"language\">py</ac:parameter><![CDATA[a <b> & ]]></i>tail");
        let Node::Element(p) = &nodes[0] else {
            panic!("{nodes:?}")
        };
        assert_eq!((p.name.as_str(), p.attr("class")), ("p", Some("x")));
        assert_eq!(p.text(), "Hi thereyou");
        let Node::Element(param) = &nodes[1] else {
            panic!("{nodes:?}")
        };
        assert_eq!(param.attr("ac:name"), Some("language"));
        assert_eq!(nodes[2], Node::Cdata("a <b> & ".into()));
        assert_eq!(nodes[3], Node::Text("tail".into()));
    }

    #[test]
    fn never_panics_on_truncated_input() {
        let doc = "<p a='1' b=\"2\" c=3 d>x &amp; <![CDATA[y]]> <!-- c --> </p><?xml?>";
        for end in 0..=doc.len() {
            if doc.is_char_boundary(end) {
                let _ = parse(&doc[..end]);
            }
        }
        assert!(parse("< 3 and <")
            .iter()
            .any(|n| matches!(n, Node::Text(t) if t.contains("< 3"))));
    }
}
