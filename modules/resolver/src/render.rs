//! The files' content. The text is what the dns role's copy and blockinfile
//! tasks wrote, byte for byte, so a node they configured reports unchanged.

use crate::params::{HostsBlock, Resolv, State};

/// The dhclient enter hook: dhclient-script(8) calls `make_resolv_conf`
/// to rewrite /etc/resolv.conf on every lease; the hook defines it as a no-op.
pub const DHCLIENT_HOOK: &str = "\
# Managed by Ansible (vrrp-lxd dns role): /etc/resolv.conf names the
# topology's name servers; dhclient leaves it as it is (dhclient-script(8)).
make_resolv_conf() { :; }
";

pub fn resolv_conf(r: &Resolv) -> String {
    let mut out = format!(
        "# Managed by Ansible (vrrp-lxd dns role): the servers of {0}.\nsearch {0}\n",
        r.search
    );
    for server in &r.nameservers {
        out.push_str(&format!("nameserver {server}\n"));
    }
    if !r.options.is_empty() {
        out.push_str(&format!("options {}\n", r.options.join(" ")));
    }
    out
}

/// The hosts file with the block put in, replaced or taken out, as
/// ansible.builtin.blockinfile does it (insertafter=EOF): the block is the
/// lines between the last BEGIN and the last END marker line; a new block
/// goes at the end; a block with no lines is no block. `None` when there is
/// no file and none is wanted.
pub fn hosts_file(current: Option<&[u8]>, block: &HostsBlock) -> Option<Vec<u8>> {
    let present = block.state == State::Present;
    if current.is_none() && !present {
        return None;
    }
    let begin = format!("{}\n", block.begin);
    let end = format!("{}\n", block.end);
    let mut lines: Vec<Vec<u8>> = split_lines(current.unwrap_or_default());
    let n0 = lines.iter().rposition(|l| l == begin.as_bytes());
    let n1 = lines.iter().rposition(|l| l == end.as_bytes());
    let at = match (n0, n1) {
        (Some(b), Some(e)) => {
            let (from, to) = (b.min(e), b.max(e));
            lines.drain(from..=to);
            from
        }
        _ => lines.len(),
    };
    if at > 0 && !lines[at - 1].ends_with(b"\n") {
        lines[at - 1].push(b'\n');
    }
    if present && !block.lines.is_empty() {
        let mut new = vec![begin.into_bytes()];
        for l in &block.lines {
            new.push(format!("{} {}\n", l.address, l.names.join(" ")).into_bytes());
        }
        new.push(end.into_bytes());
        lines.splice(at..at, new);
    }
    Some(lines.concat())
}

/// Lines with their ends, split where Python's `bytes.splitlines(True)`
/// splits (`\n`, `\r\n`, `\r`), so a marker line is found exactly as
/// blockinfile finds it.
fn split_lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let end = match bytes[i] {
            b'\n' => Some(i + 1),
            b'\r' if bytes.get(i + 1) == Some(&b'\n') => Some(i + 2),
            b'\r' => Some(i + 1),
            _ => None,
        };
        match end {
            Some(e) => {
                out.push(bytes[start..e].to_vec());
                start = e;
                i = e;
            }
            None => i += 1,
        }
    }
    if start < bytes.len() {
        out.push(bytes[start..].to_vec());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::HostLine;

    fn block(state: State, lines: &[(&str, &[&str])]) -> HostsBlock {
        HostsBlock {
            state,
            lines: lines
                .iter()
                .map(|(a, n)| HostLine {
                    address: a.parse().expect("address"),
                    names: n.iter().map(|s| s.to_string()).collect(),
                })
                .collect(),
            begin: "# BEGIN vrrp-lxd managed hosts".into(),
            end: "# END vrrp-lxd managed hosts".into(),
        }
    }

    const BASE: &str = "127.0.0.1 localhost\n::1 localhost ip6-localhost\n";

    fn two() -> HostsBlock {
        block(
            State::Present,
            &[
                ("10.231.0.11", &["lb-01.vrrp.internal", "lb-01"]),
                ("10.231.0.10", &["www.vrrp.internal", "www"]),
            ],
        )
    }

    const TWO: &str = "# BEGIN vrrp-lxd managed hosts\n\
                       10.231.0.11 lb-01.vrrp.internal lb-01\n\
                       10.231.0.10 www.vrrp.internal www\n\
                       # END vrrp-lxd managed hosts\n";

    fn text(b: Option<Vec<u8>>) -> String {
        String::from_utf8(b.expect("a file")).expect("utf-8")
    }

    #[test]
    fn resolv_conf_is_what_the_role_wrote() {
        let r = Resolv {
            search: "vrrp.internal".into(),
            nameservers: vec![
                "10.231.0.10".parse().expect("ip"),
                "::1".parse().expect("ip"),
            ],
            options: vec!["timeout:1".into(), "attempts:2".into()],
        };
        assert_eq!(
            resolv_conf(&r),
            "# Managed by Ansible (vrrp-lxd dns role): the servers of vrrp.internal.\n\
             search vrrp.internal\n\
             nameserver 10.231.0.10\n\
             nameserver ::1\n\
             options timeout:1 attempts:2\n"
        );
        let bare = Resolv {
            options: vec![],
            ..r
        };
        assert!(!resolv_conf(&bare).contains("options"));
    }

    #[test]
    fn a_block_is_appended_then_kept() {
        let once = text(hosts_file(Some(BASE.as_bytes()), &two()));
        assert_eq!(once, format!("{BASE}{TWO}"));
        let twice = text(hosts_file(Some(once.as_bytes()), &two()));
        assert_eq!(twice, once);
    }

    #[test]
    fn a_block_is_replaced_where_it_is() {
        let old = format!("{BASE}# BEGIN vrrp-lxd managed hosts\n10.0.0.1 old\n# END vrrp-lxd managed hosts\n10.9.9.9 mine\n");
        let new = text(hosts_file(Some(old.as_bytes()), &two()));
        assert_eq!(new, format!("{BASE}{TWO}10.9.9.9 mine\n"));
    }

    #[test]
    fn absent_removes_the_block_and_nothing_else() {
        let with = format!("{BASE}{TWO}10.9.9.9 mine\n");
        let absent = block(State::Absent, &[]);
        assert_eq!(
            text(hosts_file(Some(with.as_bytes()), &absent)),
            format!("{BASE}10.9.9.9 mine\n")
        );
        assert_eq!(text(hosts_file(Some(BASE.as_bytes()), &absent)), BASE);
        assert_eq!(hosts_file(None, &absent), None);
        // An empty block is no block, as with blockinfile.
        let empty = block(State::Present, &[]);
        assert_eq!(
            text(hosts_file(Some(with.as_bytes()), &empty)),
            format!("{BASE}10.9.9.9 mine\n")
        );
    }

    #[test]
    fn as_blockinfile_does_at_the_edges() {
        // A last line without its newline gets one before the block.
        assert_eq!(
            text(hosts_file(Some(b"127.0.0.1 localhost"), &two())),
            format!("127.0.0.1 localhost\n{TWO}")
        );
        // No file: the block is the file.
        assert_eq!(text(hosts_file(None, &two())), TWO);
        // A BEGIN without END is not a block: a new one goes at the end.
        let half = format!("# BEGIN vrrp-lxd managed hosts\n{BASE}");
        assert_eq!(
            text(hosts_file(Some(half.as_bytes()), &two())),
            format!("{half}{TWO}")
        );
        // CRLF lines and bytes that are not UTF-8 stay as they are.
        let odd: &[u8] = b"127.0.0.1 localhost\r\n# caf\xe9\n";
        let out = hosts_file(Some(odd), &two()).expect("file");
        assert!(out.starts_with(odd));
        let out = hosts_file(Some(&out), &block(State::Absent, &[])).expect("file");
        assert_eq!(out, odd);
    }

    #[test]
    fn lines_split_as_python_splits_them() {
        assert_eq!(
            split_lines(b"a\nb\r\nc\rd"),
            vec![
                b"a\n".to_vec(),
                b"b\r\n".to_vec(),
                b"c\r".to_vec(),
                b"d".to_vec()
            ]
        );
        assert!(split_lines(b"").is_empty());
    }
}
