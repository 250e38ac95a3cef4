//! `resolver`: how an instance resolves names, in one call. /etc/resolv.conf
//! names the zone's servers (written in place of a link there, never through
//! it), a dhclient enter hook keeps dhclient from rewriting it on the next
//! lease, and a marked block of /etc/hosts holds every name as a fallback (or
//! is taken out). The content is what the dns role's copy and blockinfile
//! tasks wrote, so nodes they configured report unchanged.

mod params;
mod render;
mod replace;

pub use params::SPEC;

use std::path::Path;

use ansible_module::{ConfigFile, Fail, Module, ModuleSpec};

use crate::params::{Params, State};

pub fn spec() -> ModuleSpec {
    ModuleSpec::from_json(params::SPEC)
}

fn fail(e: impl ToString) -> Fail {
    Fail::new(e.to_string())
}

pub fn run(m: &mut Module) -> anyhow::Result<()> {
    let p: Params = m.parse()?;
    let wanted = p.check().map_err(Fail::new)?;
    let check = m.check_mode();
    let mut changed_files = Vec::new();

    // The hook first: a lease renewed between the two writes must not put
    // dhclient's resolv.conf back.
    if p.keep_dhclient {
        let out = ConfigFile::new(&p.dhclient_hook)
            .private(0o644)
            .write(render::DHCLIENT_HOOK, check)
            .map_err(fail)?;
        if out.changed {
            changed_files.push(p.dhclient_hook.clone());
            m.add_diff(out.diff);
        }
    }
    if let Some(resolv) = &wanted.resolv {
        let out = replace::write(
            Path::new(&p.resolv_conf),
            render::resolv_conf(resolv).as_bytes(),
            check,
        )
        .map_err(Fail::new)?;
        if out.changed {
            changed_files.push(p.resolv_conf.clone());
            m.add_diff(out.diff);
        }
    }
    if let Some(block) = &wanted.hosts {
        // The hosts file is followed through a link only one we trust could
        // have made, as blockinfile follows it to write the real file.
        let file = ConfigFile::new(&p.hosts_file).private(0o644);
        let current = file.read_current().map_err(fail)?;
        if let Some(after) = render::hosts_file(current.as_deref(), block) {
            let out = file.write_bytes(&after, check).map_err(fail)?;
            if out.changed {
                changed_files.push(p.hosts_file.clone());
                m.add_diff(out.diff);
            }
        }
        m.set(
            "hosts_block",
            if block.state == State::Present && !block.lines.is_empty() {
                "present"
            } else {
                "absent"
            },
        );
    }
    m.set_changed(!changed_files.is_empty());
    m.set("changed_files", changed_files);
    m.set(
        "nameservers",
        wanted
            .resolv
            .as_ref()
            .map(|r| {
                r.nameservers
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default(),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Map, Value};

    fn run_module(args: Value) -> (Map<String, Value>, bool) {
        let args = args.as_object().expect("object").clone();
        ansible_module::execute("resolver", &spec(), args, run)
    }

    #[test]
    fn spec_parses() {
        let u = spec().usage("resolver");
        assert!(
            u.contains("nameservers") && u.contains("hosts_state"),
            "{u}"
        );
    }

    #[test]
    fn ansible_style_errors() {
        let (r, failed) = run_module(json!({"nameservers": ["10.0.0.1"]}));
        assert!(failed);
        assert_eq!(
            r["msg"],
            "missing parameter(s) required by 'nameservers': search"
        );
        let (r, failed) = run_module(json!({"x": 1}));
        assert!(failed);
        assert!(
            r["msg"]
                .as_str()
                .is_some_and(|m| m.starts_with("Unsupported parameters for (resolver) module: x")),
            "{r:?}"
        );
        let (r, failed) = run_module(json!({"hosts": [{"name": "a"}]}));
        assert!(failed);
        assert!(
            r["msg"]
                .as_str()
                .is_some_and(|m| m.contains("missing required arguments: address")),
            "{r:?}"
        );
    }

    #[test]
    fn all_three_files_then_unchanged_then_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("chmod");
        let at = |n: &str| dir.path().join(n).display().to_string();
        std::fs::write(at("hosts"), "127.0.0.1 localhost\n").expect("write");
        let args = json!({
            "search": "vrrp.internal",
            "nameservers": ["10.231.0.10", "10.231.0.11"],
            "keep_dhclient": true,
            "dhclient_hook": at("hooks/vrrp-lxd-resolver"),
            "resolv_conf": at("resolv.conf"),
            "hosts": [{"address": "10.231.0.11", "name": "lb-01.vrrp.internal", "aliases": ["lb-01"]}],
            "hosts_file": at("hosts"),
            "hosts_state": "present",
            "_ansible_check_mode": true,
            "_ansible_diff": true
        });
        let (r, failed) = run_module(args.clone());
        assert!(!failed, "{r:?}");
        assert_eq!(r["changed"], true);
        assert_eq!(r["diff"].as_array().map(Vec::len), Some(3), "{r:?}");
        assert!(!dir.path().join("resolv.conf").exists());

        let mut live = args.clone();
        live["_ansible_check_mode"] = json!(false);
        let (r, _) = run_module(live.clone());
        assert_eq!(r["changed"], true, "{r:?}");
        assert_eq!(
            std::fs::read_to_string(at("hosts")).expect("read"),
            "127.0.0.1 localhost\n# BEGIN vrrp-lxd managed hosts\n\
             10.231.0.11 lb-01.vrrp.internal lb-01\n# END vrrp-lxd managed hosts\n"
        );
        assert_eq!(
            std::fs::read_to_string(at("hooks/vrrp-lxd-resolver")).expect("read"),
            render::DHCLIENT_HOOK
        );
        let (r, _) = run_module(live.clone());
        assert_eq!(r["changed"], false, "{r:?}");
        assert_eq!(r["changed_files"], json!([]));

        live["hosts_state"] = json!("absent");
        let (r, _) = run_module(live);
        assert_eq!(r["changed_files"], json!([at("hosts")]), "{r:?}");
        assert_eq!(
            std::fs::read_to_string(at("hosts")).expect("read"),
            "127.0.0.1 localhost\n"
        );
    }
}
