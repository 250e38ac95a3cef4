//! One check per target syntax for a string that a module writes into a config
//! file, a unit file, a shell command or an admin-socket command. Each refuses
//! a value that would mean more than one token there (a line break, a comment
//! sign, a quote, a command separator, an expansion), naming the option and
//! the first offending character, before anything is touched.
//!
//! The allowed sets are deliberately narrow: what a legitimate value of these
//! options holds (names, addresses, paths, times, URL paths) passes; anything
//! the target's parser treats specially does not.

use crate::module::Fail;

/// How a character is shown in a refusal: printable ones quoted, the rest as
/// their code point, so a newline or U+2028 is visible in the message.
pub fn show(c: char) -> String {
    if c.is_ascii_graphic() {
        format!("'{c}'")
    } else if c == ' ' {
        "a space".into()
    } else {
        format!("U+{:04X}", u32::from(c))
    }
}

/// Fails with the first character of `value` outside `allowed`.
fn only(
    option: &str,
    value: &str,
    target: &str,
    allowed: impl Fn(char) -> bool,
) -> Result<(), Fail> {
    if value.is_empty() {
        return Err(Fail::new(format!("{option} must not be empty")));
    }
    match value.chars().find(|c| !allowed(*c)) {
        None => Ok(()),
        Some(c) => Err(Fail::new(format!(
            "{option} must not contain {} ({target}), got: {value:?}",
            show(c)
        ))),
    }
}

/// One word of haproxy.cfg or of a runtime API command: printable ASCII
/// without blanks, quotes, backslash, `#` (comment), `;` (separates runtime
/// commands), `$` and `%` (expansions), backtick and braces.
pub fn haproxy_word<'a>(option: &str, value: &'a str) -> Result<&'a str, Fail> {
    only(
        option,
        value,
        "it is written as one word into haproxy.cfg and HAProxy's runtime commands",
        |c| c.is_ascii_graphic() && !"#\"'\\;$%`{}".contains(c),
    )?;
    Ok(value)
}

/// One word of keepalived.conf: letters, digits and `_ - . : @ /`.
/// keepalived splits on blanks and braces, and treats `#`, `!`, quotes, `$`
/// (parameters) and `~` (sequences) specially.
pub fn keepalived_word<'a>(option: &str, value: &'a str) -> Result<&'a str, Fail> {
    only(
        option,
        value,
        "it is written as one word into keepalived.conf",
        |c| c.is_ascii_alphanumeric() || "_-.:@/".contains(c),
    )?;
    Ok(value)
}

/// The inside of a double-quoted keepalived.conf string (a script command):
/// printable ASCII and spaces, without the quote itself, comment signs,
/// parameter and sequence signs, backslash or braces.
pub fn keepalived_string<'a>(option: &str, value: &'a str) -> Result<&'a str, Fail> {
    if value.trim().is_empty() {
        return Err(Fail::new(format!("{option} is empty")));
    }
    only(
        option,
        value,
        "it is written into keepalived.conf as one quoted string; put the command in a script file",
        |c| (c.is_ascii_graphic() || c == ' ') && !"\"#!$~\\{}`".contains(c),
    )?;
    Ok(value)
}

/// An absolute file path that can go unquoted into every syntax we write:
/// haproxy.cfg, keepalived.conf, an Apache directive, a tmpfiles.d line, a
/// systemd `Exec*=` line and the `sh -c` script inside it. Letters, digits
/// and `_ - . / @ +`, no `.`/`..` components, no empty ones.
pub fn path<'a>(option: &str, value: &'a str) -> Result<&'a str, Fail> {
    only(
        option,
        value,
        "it is written unquoted into config files, unit files and shell commands",
        |c| c.is_ascii_alphanumeric() || "_-./@+".contains(c),
    )?;
    let parts: Vec<&str> = value.split('/').skip(1).collect();
    if !value.starts_with('/')
        || value.len() > 1024
        || parts
            .iter()
            .any(|p| p.is_empty() || *p == "." || *p == "..")
    {
        return Err(Fail::new(format!(
            "{option} must be an absolute path to a file, without '.', '..' or empty components, got: {value:?}"
        )));
    }
    Ok(value)
}

/// A free-form value that must stay on its line (a comment, a description):
/// no control characters and no Unicode line or paragraph separators.
pub fn one_line<'a>(option: &str, value: &'a str) -> Result<&'a str, Fail> {
    if let Some(c) = value
        .chars()
        .find(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{85}'))
    {
        return Err(Fail::new(format!(
            "{option} must not contain {} (it must stay on one line), got: {value:?}",
            show(c)
        )));
    }
    Ok(value)
}

/// `value` as one word of a POSIX `sh` command: left bare when it holds only
/// characters `sh` does not interpret, else single-quoted (a quote inside
/// becomes `'\''`).
pub fn sh_quote(value: &str) -> String {
    if !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./@+:=,".contains(c))
    {
        return value.to_string();
    }
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// `value` as systemd reads it on an `Exec*=` line: `%` starts a specifier,
/// `$` a variable and `\` an escape, so each is doubled.
pub fn systemd_exec_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
            '\\' => out.push_str("\\\\"),
            _ => out.push(c),
        }
    }
    out
}

/// An argument of an Apache directive, written in double quotes: printable
/// ASCII and spaces, without the quote, backslash or `${` (Apache expands
/// `${VAR}` before it parses the line).
pub fn apache_quoted(option: &str, value: &str) -> Result<String, Fail> {
    only(
        option,
        value,
        "it is written into an Apache directive as one quoted argument",
        |c| (c.is_ascii_graphic() || c == ' ') && !"\"\\".contains(c),
    )?;
    if value.contains("${") {
        return Err(Fail::new(format!(
            "{option} must not contain '${{' (Apache expands it as a variable), got: {value:?}"
        )));
    }
    Ok(format!("\"{value}\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What an attacker with a playbook variable would try.
    const HOSTILE: &[&str] = &[
        "\n", "\r", "\0", ";", "#", "\"", "'", "\\", "$(", "`", "{", "}", "%", " ", "\u{2028}",
        "$", "\t",
    ];

    #[test]
    fn words_refuse_every_hostile_character_and_name_it() {
        for h in HOSTILE {
            let v = format!("ok{h}x");
            assert!(haproxy_word("o", &v).is_err(), "haproxy {v:?}");
            assert!(keepalived_word("o", &v).is_err(), "keepalived {v:?}");
            assert!(path("o", &format!("/run/{v}")).is_err(), "path {v:?}");
        }
        // keepalived also reads `!` as a comment and `~` as a sequence.
        for h in ["!", "~"] {
            assert!(keepalived_word("o", h).is_err() && keepalived_string("o", h).is_err());
        }
        let e = haproxy_word("stats.uri", "/a;b").unwrap_err();
        assert_eq!(
            e.msg,
            "stats.uri must not contain ';' (it is written as one word into haproxy.cfg and HAProxy's runtime commands), got: \"/a;b\""
        );
        let e = path("track_file", "/run/x\ny").unwrap_err();
        assert!(
            e.msg.starts_with("track_file must not contain U+000A"),
            "{}",
            e.msg
        );
        let e = keepalived_word("interface", "eth0\u{2028}").unwrap_err();
        assert!(e.msg.contains("U+2028"), "{}", e.msg);
    }

    #[test]
    fn ordinary_values_pass() {
        for v in [
            "*:80",
            "/haproxy?stats",
            "10.0.0.1:8404",
            "[::]:80",
            "2s",
            "SERVERID",
        ] {
            assert!(haproxy_word("o", v).is_ok(), "{v}");
        }
        for v in [
            "vrrp_1",
            "eth0",
            "lb-01.example",
            "10.231.0.10",
            "/run/k/haproxy",
        ] {
            assert!(keepalived_word("o", v).is_ok(), "{v}");
        }
        assert!(path("o", "/run/keepalived/haproxy.down").is_ok());
        for bad in ["relative", "/a/../b", "/a//b", "/a/", "/"] {
            assert!(path("o", bad).is_err(), "{bad}");
        }
        assert!(keepalived_string("s", "killall -0 haproxy").is_ok());
        assert!(keepalived_string("s", "kill -0 $(pidof x)").is_err());
    }

    #[test]
    fn quoting() {
        assert_eq!(sh_quote("/run/x"), "/run/x");
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's; rm"), r"'it'\''s; rm'");
        assert_eq!(sh_quote(""), "''");
        assert_eq!(systemd_exec_escape("50% $HOME \\n"), "50%% $$HOME \\\\n");
        assert_eq!(
            apache_quoted("o", "/var/www/a b").ok().as_deref(),
            Some("\"/var/www/a b\"")
        );
        assert!(apache_quoted("o", "${HOME}").is_err());
        assert!(apache_quoted("o", "a\"b").is_err());
        assert!(one_line("o", "a\u{2029}").is_err() && one_line("o", "plain text").is_ok());
    }
}
