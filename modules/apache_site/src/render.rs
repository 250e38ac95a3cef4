//! The text of the files the module writes: the virtual host and the default
//! page. Pure functions of a [`Site`], so a re-run renders the same bytes.

use std::fmt::Write as _;

use crate::params::{self, InvalidInput, ProxyTrust, Site};

/// The environment variable a health-check request sets; `CustomLog` skips it.
pub const HEALTH_CHECK_ENV: &str = "vrrp_health_check";

/// Apache's `combined` format with `%a` (the client address after mod_remoteip)
/// in place of `%h`, so the real client comes first on every line.
pub const LOG_FORMAT: &str = r#"%a %l %u %t \"%r\" %>s %O \"%{Referer}i\" \"%{User-Agent}i\""#;

/// The lines `extra_config` adds to the vhost, before indentation: blank
/// ones empty, the others without trailing blanks, trailing blank lines
/// dropped. `params::check_extra_config` reads exactly these.
pub fn extra_lines(extra: &str) -> Vec<String> {
    extra
        .trim_end()
        .lines()
        .map(|line| {
            if line.trim().is_empty() {
                String::new()
            } else {
                line.trim_end().to_string()
            }
        })
        .collect()
}

/// The vhost file for `sites-available/<name>.conf`. Every value goes through
/// the check for the place it lands in (`params`), here as well as when the
/// options were read, so no text reaches the file unchecked.
pub fn vhost(site: &Site) -> Result<String, InvalidInput> {
    let mut s = String::new();
    let name = params::site_name(&site.name)?;
    let root = params::quoted_path("document_root", &site.document_root)?;
    // Writing into a String cannot fail.
    let _ = writeln!(
        s,
        "# Managed by the apache_site module (site {name}): local changes are overwritten."
    );
    let _ = writeln!(s, "<VirtualHost {}>", site.listen.vhost_arg());
    if let Some(server_name) = &site.server_name {
        let server_name = params::host_name("server_name", server_name, false)?;
        let _ = writeln!(s, "    ServerName {server_name}");
    }
    if !site.server_aliases.is_empty() {
        let aliases = site
            .server_aliases
            .iter()
            .map(|a| params::host_name("server_aliases", a, true))
            .collect::<Result<Vec<_>, _>>()?;
        let _ = writeln!(s, "    ServerAlias {}", aliases.join(" "));
    }
    let _ = writeln!(s, "    DocumentRoot {root}");
    let _ = writeln!(s, "    <Directory {root}>");
    s.push_str("        Options -Indexes +FollowSymLinks\n");
    s.push_str("        AllowOverride None\n");
    s.push_str("        Require all granted\n");
    s.push_str("    </Directory>\n");

    let proxies = remote_ip(&mut s, site)?;
    let hc = &site.health_check;
    if !hc.log {
        health_check_env(&mut s, site, &proxies)?;
    }

    s.push('\n');
    let error_log = params::log_target("error_log", &site.error_log)?;
    let access_log = params::log_target("access_log", &site.access_log)?;
    let _ = writeln!(s, "    ErrorLog {error_log}");
    let condition = if hc.log {
        String::new()
    } else {
        format!(" env=!{HEALTH_CHECK_ENV}")
    };
    let _ = writeln!(s, "    CustomLog {access_log} \"{LOG_FORMAT}\"{condition}");

    if let Some(extra) = site.extra_config.as_deref() {
        extra_config(&mut s, extra)?;
    }
    s.push_str("</VirtualHost>\n");
    Ok(s)
}

/// The mod_remoteip lines for the trusted proxies, if any; returns the
/// proxies, written from parsed addresses, never from the option's text.
fn remote_ip(s: &mut String, site: &Site) -> Result<Vec<String>, InvalidInput> {
    let proxies: Vec<String> = site
        .trusted_proxies
        .iter()
        .map(|p| params::parse_proxy(&p.0).map(|p| p.0))
        .collect::<Result<_, _>>()?;
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
    Ok(proxies)
}

/// The line that marks the load balancer's health checks (from one of
/// `proxies`, when there are any) so that `CustomLog` leaves them out.
fn health_check_env(s: &mut String, site: &Site, proxies: &[String]) -> Result<(), InvalidInput> {
    let hc = &site.health_check;
    let method = params::health_check_method(&hc.method)?;
    let (path, query) = params::health_check_path(&hc.path)?;
    let from = if proxies.is_empty() {
        String::new()
    } else {
        let any: Vec<String> = proxies.iter().map(|p| format!("-R '{p}'")).collect();
        format!(" && ({})", any.join(" || "))
    };
    s.push('\n');
    let _ = writeln!(
        s,
        "    # Load balancer health checks ({method} {}) are not logged.",
        hc.path
    );
    // REQUEST_URI is the path without the query string; a query in the
    // check's path is matched on its own.
    let request = match query {
        Some(query) => {
            format!("%{{REQUEST_URI}} == '{path}' && %{{QUERY_STRING}} == '{query}'")
        }
        None => format!("%{{REQUEST_URI}} == '{path}'"),
    };
    let _ = writeln!(
        s,
        "    SetEnvIfExpr \"%{{REQUEST_METHOD}} == '{method}' && {request}{from}\" {HEALTH_CHECK_ENV}"
    );
    Ok(())
}

/// `extra_config`'s lines, checked, indented inside the `<VirtualHost>`.
fn extra_config(s: &mut String, extra: &str) -> Result<(), InvalidInput> {
    params::check_extra_config(extra)?;
    let lines = extra_lines(extra);
    if !lines.is_empty() {
        s.push('\n');
        for line in lines {
            if line.is_empty() {
                s.push('\n');
            } else {
                let _ = writeln!(s, "    {line}");
            }
        }
    }
    Ok(())
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
        let text = vhost(&site()).expect("vhost");
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
        let text = vhost(&s).expect("vhost");
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
        assert!(vhost(&s).expect("vhost").contains(
            "    SetEnvIfExpr \"%{REQUEST_METHOD} == 'GET' && %{REQUEST_URI} == '/health' && %{QUERY_STRING} == 'full=1' && (-R '10.231.0.11')\" vrrp_health_check\n"
        ));
    }

    #[test]
    fn index_names_the_host_escaped() {
        assert!(default_index("web-01").contains("<h1>web-01</h1>"));
        assert!(default_index("a<b").contains("<h1>a&lt;b</h1>"));
    }
}
