//! How Apache 2.4 reads a configuration file, as far as the module needs it to
//! know what the text it writes means: `ap_cfg_getline` (a line ending in a
//! backslash continues on the next one; blanks around a line are dropped),
//! `ap_build_config_sub` (`#` lines are comments; a first word `<Name` opens a
//! section, `</Name>` closes the innermost one) and `ap_getword_conf` (words
//! split on blanks, `"..."` or `'...'` one word). The vhost checks and the tests
//! read rendered text through these functions.

/// `apr_isspace` in the C locale: Apache's notion of a blank.
pub fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\u{0b}' | '\u{0c}')
}

fn trim(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// One logical line: where it starts (0-based physical line) and its text as
/// `ap_cfg_getline` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub number: usize,
    pub text: String,
}

/// The logical lines of `text`: a physical line that ends in a backslash and
/// a newline is joined with the next one (the backslash removed), then blanks
/// around the result are trimmed. The flag says the text ends in such a
/// continuation, which would swallow whatever line follows the text.
pub fn logical_lines(text: &str) -> (Vec<Line>, bool) {
    let mut out = Vec::new();
    let mut current: Option<Line> = None;
    for (n, piece) in text.split_inclusive('\n').enumerate() {
        let line = current.get_or_insert_with(|| Line {
            number: n,
            text: String::new(),
        });
        let continued = match piece.strip_suffix('\n') {
            Some(body) => {
                let body = body.strip_suffix('\r').unwrap_or(body);
                match body.strip_suffix('\\') {
                    Some(head) => {
                        line.text.push_str(head);
                        true
                    }
                    None => {
                        line.text.push_str(body);
                        false
                    }
                }
            }
            None => {
                line.text.push_str(piece);
                false
            }
        };
        if !continued {
            if let Some(mut done) = current.take() {
                done.text = trim(&done.text).to_string();
                out.push(done);
            }
        }
    }
    let open = current.is_some();
    if let Some(mut rest) = current {
        rest.text = trim(&rest.text).to_string();
        out.push(rest);
    }
    (out, open)
}

/// `ap_getword_conf`: the next word of `line` and the rest after it. A word
/// starting with `"` or `'` runs to the matching quote (a backslash escapes
/// that quote or a backslash); any other word runs to the next blank.
pub fn getword_conf(line: &str) -> (String, &str) {
    let s = line.trim_start_matches(is_space);
    let mut chars = s.char_indices().peekable();
    let Some(&(_, first)) = chars.peek() else {
        return (String::new(), s);
    };
    let (word, end) = if first == '"' || first == '\'' {
        chars.next();
        let mut word = String::new();
        let mut end = s.len();
        while let Some((i, c)) = chars.next() {
            if c == first {
                end = i + c.len_utf8();
                break;
            }
            if c == '\\' {
                if let Some(&(_, n)) = chars.peek() {
                    if n == first || n == '\\' {
                        word.push(n);
                        chars.next();
                        continue;
                    }
                }
            }
            word.push(c);
        }
        (word, end)
    } else {
        let end = s.find(is_space).unwrap_or(s.len());
        (s[..end].to_string(), end)
    };
    (word, s[end..].trim_start_matches(is_space))
}

/// Every word of `line`.
pub fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    loop {
        let (w, r) = getword_conf(rest);
        if w.is_empty() && r.is_empty() {
            return out;
        }
        out.push(w);
        rest = r;
    }
}

/// What one logical line is to Apache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A blank line or a comment.
    Nothing,
    /// `<Name args>`: the name without `<` and the arguments (the section's
    /// handler drops the last `>` of the line, then reads words).
    Open(String, Vec<String>),
    /// `</Name>` (the name without `</` and `>`, `None` when the `>` is missing).
    Close(Option<String>),
    /// A directive and its arguments.
    Directive(String, Vec<String>),
}

/// Reads one logical line as `ap_build_config_sub` does (before `${VAR}`
/// expansion, which the callers refuse where it could change the first word).
pub fn item(line: &str) -> Item {
    let line = trim(line);
    if line.is_empty() || line.starts_with('#') {
        return Item::Nothing;
    }
    let (word, rest) = getword_conf(line);
    if let Some(name) = word.strip_prefix("</") {
        return Item::Close(name.strip_suffix('>').map(str::to_string));
    }
    if let Some(name) = word.strip_prefix('<') {
        let name = name.strip_suffix('>').unwrap_or(name).to_string();
        let args = match rest.rfind('>') {
            Some(i) => &rest[..i],
            None => rest,
        };
        return Item::Open(name, words(args));
    }
    Item::Directive(word, words(rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation_and_trimming_as_ap_cfg_getline() {
        let (lines, open) = logical_lines("  A b \\\n  c\n\n# x \\\n</VirtualHost>\nlast\\\n");
        let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["A b   c", "", "# x </VirtualHost>", "last"]);
        assert_eq!(lines[2].number, 3);
        assert!(open, "the last line continues onto whatever follows");
        // Without a newline the last line does not continue.
        assert!(!logical_lines("last\\").1);
        // A backslash before the final one does not stop the continuation (2.4).
        let (lines, open) = logical_lines("a\\\\\nb\n");
        assert_eq!(lines[0].text, "a\\b");
        assert!(!open);
        let (lines, _) = logical_lines("<\\\n/VirtualHost>\n");
        assert_eq!(
            item(&lines[0].text),
            Item::Close(Some("VirtualHost".into()))
        );
    }

    #[test]
    fn words_as_ap_getword_conf() {
        assert_eq!(
            words(r#"CustomLog /x "%a \"%r\" %>s" env=!hc"#),
            ["CustomLog", "/x", r#"%a "%r" %>s"#, "env=!hc"]
        );
        assert_eq!(words(r"A 'it\'s' b\c"), ["A", "it's", r"b\c"]);
        assert_eq!(words("A \"unterminated x"), ["A", "unterminated x"]);
        assert_eq!(words("a\tb\u{0b}c"), ["a", "b", "c"]);
        // A quote inside a bare word is just a character; U+00A0 is not a blank.
        assert_eq!(words("a\"b c\u{a0}d"), ["a\"b", "c\u{a0}d"]);
    }

    #[test]
    fn sections() {
        assert_eq!(
            item("  <Directory \"/var/www/a b\">"),
            Item::Open("Directory".into(), vec!["/var/www/a b".into()])
        );
        assert_eq!(item("</directory>"), Item::Close(Some("directory".into())));
        assert_eq!(item("</Directory"), Item::Close(None));
        assert_eq!(
            item("\"</VirtualHost>\""),
            Item::Close(Some("VirtualHost".into()))
        );
        assert_eq!(item("# <VirtualHost>"), Item::Nothing);
        assert_eq!(
            item("DocumentRoot \"/srv/x\""),
            Item::Directive("DocumentRoot".into(), vec!["/srv/x".into()])
        );
    }
}
