//! The text of the files the module writes: the virtual host and the default
//! page. Pure functions of a [`Site`], so a re-run renders the same bytes.

use std::fmt::Write as _;

use crate::params::{ProxyTrust, Site};

/// The environment variable a health-check request sets; `CustomLog` skips it.
pub const HEALTH_CHECK_ENV: &str = "vrrp_health_check";

/// Apache's `combined` format with `%a` (the client address after mod_remoteip)
/// in place of `%h`, so the real client comes first on every line.
pub const LOG_FORMAT: &str = r#"%a %l %u %t \"%r\" %>s %O \"%{Referer}i\" \"%{User-Agent}i\""#;

/// The vhost file for `sites-available/<name>.conf`.
pub fn vhost(site: &Site) -> String {
    let mut s = String::new();
    let root = site.document_root.display();
    // Writing into a String cannot fail.
    let _ = writeln!(
        s,
        "# Managed by the apache_site module (site {}): local changes are overwritten.",
        site.name
    );
    let _ = writeln!(s, "<VirtualHost {}>", site.listen.vhost_arg());
    if let Some(name) = &site.server_name {
        let _ = writeln!(s, "    ServerName {name}");
    }
    if !site.server_aliases.is_empty() {
        let _ = writeln!(s, "    ServerAlias {}", site.server_aliases.join(" "));
    }
    let _ = writeln!(s, "    DocumentRoot \"{root}\"");
    let _ = writeln!(s, "    <Directory \"{root}\">");
    s.push_str("        Options -Indexes +FollowSymLinks\n");
    s.push_str("        AllowOverride None\n");
    s.push_str("        Require all granted\n");
    s.push_str("    </Directory>\n");

    let proxies: Vec<&str> = site.trusted_proxies.iter().map(|p| p.0.as_str()).collect();
    if !proxies.is_empty() {
        let directive = match site.proxy_trust {
            ProxyTrust::Internal => "RemoteIPInternalProxy",
            ProxyTrust::Trusted => "RemoteIPTrustedProxy",
        };
        s.push('\n');
        s.push_str(
            "    # The client address comes from X-Forwarded-For only when the peer is one\n    \
             # of these proxies; from anyone else the header is ignored.\n",
        );
        s.push_str("    RemoteIPHeader X-Forwarded-For\n");
        let _ = writeln!(s, "    {directive} {}", proxies.join(" "));
    }

    let hc = &site.health_check;
    if !hc.log {
        let from = if proxies.is_empty() {
            String::new()
        } else {
            let any: Vec<String> = proxies.iter().map(|p| format!("-R '{p}'")).collect();
            format!(" && ({})", any.join(" || "))
        };
        s.push('\n');
        let _ = writeln!(
            s,
            "    # Load balancer health checks ({} {}) are not logged.",
            hc.method, hc.path
        );
        // REQUEST_URI is the path without the query string; a query in the
        // check's path is matched on its own.
        let request = match hc.path.split_once('?') {
            Some((path, query)) => {
                format!("%{{REQUEST_URI}} == '{path}' && %{{QUERY_STRING}} == '{query}'")
            }
            None => format!("%{{REQUEST_URI}} == '{}'", hc.path),
        };
        let _ = writeln!(
            s,
            "    SetEnvIfExpr \"%{{REQUEST_METHOD}} == '{}' && {request}{from}\" {HEALTH_CHECK_ENV}",
            hc.method
        );
    }

    s.push('\n');
    let _ = writeln!(s, "    ErrorLog {}", site.error_log);
    let condition = if hc.log {
        String::new()
    } else {
        format!(" env=!{HEALTH_CHECK_ENV}")
    };
    let _ = writeln!(
        s,
        "    CustomLog {} \"{LOG_FORMAT}\"{condition}",
        site.access_log
    );

    if let Some(extra) = site.extra_config.as_deref().map(str::trim_end) {
        if !extra.is_empty() {
            s.push('\n');
            for line in extra.lines() {
                if line.trim().is_empty() {
                    s.push('\n');
                } else {
                    let _ = writeln!(s, "    {}", line.trim_end());
                }
            }
        }
    }
    s.push_str("</VirtualHost>\n");
    s
}

fn html_escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&#39;".to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// The default page: it names the host that served it, as the seed's page did,
/// so a reader of the load balancer's answers sees which web node replied.
pub fn default_index(host: &str) -> String {
    let h = html_escape(host);
    format!(
        "<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\"><title>{h}</title></head>\n<body>\n<h1>{h}</h1>\n</body>\n</html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::{DefaultSite, HealthCheck, Listen, Proxy, State};
    use std::path::PathBuf;

    fn site() -> Site {
        Site {
            name: "web".into(),
            state: State::Present,
            listen: Listen {
                address: None,
                port: 80,
            },
            server_name: Some("www.example.test".into()),
            server_aliases: vec![],
            document_root: PathBuf::from("/var/www/web"),
            index_content: None,
            manage_index: true,
            trusted_proxies: vec![Proxy("10.231.0.11".into()), Proxy("10.231.0.12".into())],
            proxy_trust: ProxyTrust::Internal,
            health_check: HealthCheck {
                method: "OPTIONS".into(),
                path: "/".into(),
                log: false,
            },
            enabled: true,
            modules: vec![],
            default_site: DefaultSite::Auto,
            access_log: "${APACHE_LOG_DIR}/access.log".into(),
            error_log: "${APACHE_LOG_DIR}/error.log".into(),
            extra_config: None,
        }
    }

    #[test]
    fn vhost_with_proxies() {
        let text = vhost(&site());
        let expected = r#"# Managed by the apache_site module (site web): local changes are overwritten.
<VirtualHost *:80>
    ServerName www.example.test
    DocumentRoot "/var/www/web"
    <Directory "/var/www/web">
        Options -Indexes +FollowSymLinks
        AllowOverride None
        Require all granted
    </Directory>

    # The client address comes from X-Forwarded-For only when the peer is one
    # of these proxies; from anyone else the header is ignored.
    RemoteIPHeader X-Forwarded-For
    RemoteIPInternalProxy 10.231.0.11 10.231.0.12

    # Load balancer health checks (OPTIONS /) are not logged.
    SetEnvIfExpr "%{REQUEST_METHOD} == 'OPTIONS' && %{REQUEST_URI} == '/' && (-R '10.231.0.11' || -R '10.231.0.12')" vrrp_health_check

    ErrorLog ${APACHE_LOG_DIR}/error.log
    CustomLog ${APACHE_LOG_DIR}/access.log "%a %l %u %t \"%r\" %>s %O \"%{Referer}i\" \"%{User-Agent}i\"" env=!vrrp_health_check
</VirtualHost>
"#;
        assert_eq!(text, expected);
    }

    #[test]
    fn vhost_without_proxies_or_health_check_filter() {
        let mut s = site();
        s.trusted_proxies.clear();
        s.server_name = None;
        s.health_check.log = true;
        s.listen = Listen {
            address: "10.0.0.5".parse().ok(),
            port: 8080,
        };
        s.extra_config = Some("Header set X-Site web\n\nRedirect /old /new\n".into());
        let text = vhost(&s);
        assert!(text.contains("<VirtualHost 10.0.0.5:8080>\n"), "{text}");
        assert!(!text.contains("RemoteIP"), "{text}");
        assert!(!text.contains("SetEnvIfExpr"), "{text}");
        assert!(text.contains("\"%{User-Agent}i\\\"\"\n"), "{text}");
        assert!(
            text.ends_with("    Header set X-Site web\n\n    Redirect /old /new\n</VirtualHost>\n"),
            "{text}"
        );
    }

    #[test]
    fn health_check_with_a_query_matches_it_separately() {
        let mut s = site();
        s.trusted_proxies.truncate(1);
        s.health_check.method = "GET".into();
        s.health_check.path = "/health?full=1".into();
        assert!(vhost(&s).contains(
            "    SetEnvIfExpr \"%{REQUEST_METHOD} == 'GET' && %{REQUEST_URI} == '/health' && %{QUERY_STRING} == 'full=1' && (-R '10.231.0.11')\" vrrp_health_check\n"
        ));
    }

    #[test]
    fn index_names_the_host_escaped() {
        assert!(default_index("web-01").contains("<h1>web-01</h1>"));
        assert!(default_index("a<b").contains("<h1>a&lt;b</h1>"));
    }
}
