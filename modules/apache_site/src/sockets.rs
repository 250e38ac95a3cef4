//! Who listens on a TCP port, read from `/proc` (no `ss` needed on the node).
//!
//! A port another program holds passes `apachectl configtest`, but the graceful
//! reload that follows cannot bind it and Apache stops altogether, taking the
//! running site with it. The module asks here first.

use std::fs;
use std::path::Path;

const TABLES: [&str; 2] = ["/proc/net/tcp", "/proc/net/tcp6"];
const LISTEN: &str = "0A";

/// Socket inodes in LISTEN state on `port`, from `/proc/net/tcp{,6}`-format text.
pub fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    let want = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols.len() > 9 && cols[1].ends_with(&want) && cols[3] == LISTEN)
                .then(|| cols[9].parse().ok())
                .flatten()
        })
        .collect()
}

fn inodes(port: u16) -> Vec<u64> {
    TABLES
        .iter()
        .flat_map(|t| listening_inodes(&fs::read_to_string(t).unwrap_or_default(), port))
        .collect()
}

pub fn port_listening(port: u16) -> bool {
    !inodes(port).is_empty()
}

/// The process holding a socket inode: (pid, command name).
fn owner(proc_root: &Path, inode: u64) -> Option<(u32, String)> {
    let needle = format!("socket:[{inode}]");
    for entry in fs::read_dir(proc_root).ok()?.filter_map(Result::ok) {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds
            .filter_map(Result::ok)
            .any(|fd| fs::read_link(fd.path()).is_ok_and(|t| t.as_os_str() == needle.as_str()));
        if holds {
            let comm = fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            return Some((pid, comm.trim().to_string()));
        }
    }
    None
}

/// A program other than Apache listening on `port`, if any: (pid, name).
pub fn foreign_listener(port: u16) -> Option<(Option<u32>, String)> {
    for inode in inodes(port) {
        match owner(Path::new("/proc"), inode) {
            Some((_, comm)) if comm == "apache2" || comm == "httpd" => {}
            Some((pid, comm)) => return Some((Some(pid), comm)),
            // Sockets of another network namespace's process are not ours to see;
            // an inode with no owner is a socket being torn down.
            None => {}
        }
    }
    None
}

/// Whether whatever listens at `addr` answers `request` with an HTTP status
/// line within `limit` (connect, send and the first bytes of the answer).
pub fn answers_http(addr: std::net::SocketAddr, request: &str, limit: std::time::Duration) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, limit) else {
        return false;
    };
    if stream.set_read_timeout(Some(limit)).is_err()
        || stream.set_write_timeout(Some(limit)).is_err()
        || stream.write_all(request.as_bytes()).is_err()
    {
        return false;
    }
    let mut head = [0u8; 5];
    stream.read_exact(&mut head).is_ok() && &head == b"HTTP/"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_that_does_not_answer_is_not_serving() {
        use std::io::{Read, Write};
        use std::time::Duration;
        let quiet = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let limit = Duration::from_millis(300);
        // Accepted by the kernel (the backlog), never answered: Apache between
        // two generations.
        assert!(!answers_http(
            quiet.local_addr().expect("addr"),
            "GET / HTTP/1.0\r\n\r\n",
            limit
        ));
        let serving = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = serving.local_addr().expect("addr");
        let server = std::thread::spawn(move || {
            let (mut c, _) = serving.accept().expect("accept");
            let mut buf = [0u8; 64];
            let _ = c.read(&mut buf);
            c.write_all(b"HTTP/1.1 200 OK\r\n\r\n").expect("write");
        });
        assert!(answers_http(addr, "GET / HTTP/1.0\r\n\r\n", limit));
        server.join().expect("server");
    }

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 23456 1 0000000000000000 100 0 0 10 0
   2: 0500000A:0050 0100000A:D431 01 00000000:00000000 00:00000000 00000000     0        0 34567 1 0000000000000000 100 0 0 10 0
";

    #[test]
    fn finds_listeners_by_port_only_in_listen_state() {
        assert_eq!(listening_inodes(TCP, 80), vec![12345]);
        assert_eq!(listening_inodes(TCP, 8080), vec![23456]);
        assert!(listening_inodes(TCP, 443).is_empty());
    }

    #[test]
    fn finds_the_owner_of_our_own_socket() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let inode = inodes(port);
        assert_eq!(inode.len(), 1);
        let (pid, _) = owner(Path::new("/proc"), inode[0]).expect("owner");
        assert_eq!(pid, std::process::id());
        assert!(
            foreign_listener(port).is_some(),
            "a test binary is not Apache"
        );
    }
}
