//! Debian's Apache layout (`/etc/apache2/{sites,mods}-{available,enabled}`),
//! what `a2enmod` reads from it (which modules exist, what they depend on and
//! what they conflict with) and where it keeps its markers
//! (`/var/lib/apache2/{module,site}/`).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use crate::params::InvalidInput;

#[derive(Debug, Clone)]
pub struct Layout {
    pub root: PathBuf,
    /// Where `a2enmod`/`a2ensite` record who enabled or disabled what
    /// (`/var/lib/apache2`).
    pub state: PathBuf,
}

/// One link a module needs in `mods-enabled`: `link` -> `target` (relative, as
/// `a2enmod` makes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModLink {
    pub module: String,
    pub link: PathBuf,
    pub target: PathBuf,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>, state: impl Into<PathBuf>) -> Layout {
        Layout {
            root: root.into(),
            state: state.into(),
        }
    }

    pub fn sites_available(&self) -> PathBuf {
        self.root.join("sites-available")
    }

    pub fn sites_enabled(&self) -> PathBuf {
        self.root.join("sites-enabled")
    }

    pub fn mods_available(&self) -> PathBuf {
        self.root.join("mods-available")
    }

    pub fn mods_enabled(&self) -> PathBuf {
        self.root.join("mods-enabled")
    }

    pub fn ports_conf(&self) -> PathBuf {
        self.root.join("ports.conf")
    }

    pub fn site_file(&self, name: &str) -> PathBuf {
        self.sites_available().join(format!("{name}.conf"))
    }

    pub fn site_link(&self, name: &str) -> PathBuf {
        self.sites_enabled().join(format!("{name}.conf"))
    }

    /// The markers of modules: `<module_markers>/enabled_by_admin/<module>`.
    pub fn module_markers(&self) -> PathBuf {
        self.state.join("module")
    }

    /// The markers of sites: `<site_markers>/disabled_by_admin/<site>`.
    pub fn site_markers(&self) -> PathBuf {
        self.state.join("site")
    }

    /// The relative target `a2ensite` writes.
    pub fn site_link_target(name: &str) -> PathBuf {
        PathBuf::from(format!("../sites-available/{name}.conf"))
    }

    /// Whether Apache is installed in the Debian layout at all.
    pub fn check_installed(&self) -> Result<(), InvalidInput> {
        for dir in [
            self.mods_available(),
            self.sites_available(),
            self.sites_enabled(),
        ] {
            if !dir.is_dir() {
                return Err(InvalidInput(format!(
                    "Apache is not installed in the Debian layout here ({} is missing): install the apache2 package first",
                    dir.display()
                )));
            }
        }
        Ok(())
    }

    fn module_enabled(&self, module: &str) -> bool {
        // A broken link does not load: it counts as disabled.
        self.mods_enabled().join(format!("{module}.load")).exists()
    }

    /// `# Depends:` / `# Conflicts:` from a module's .load file.
    fn load_header(&self, module: &str, key: &str) -> Vec<String> {
        let path = self.mods_available().join(format!("{module}.load"));
        let text = fs::read_to_string(path).unwrap_or_default();
        text.lines()
            .filter_map(|l| l.trim().strip_prefix('#'))
            .filter_map(|l| {
                let (k, v) = l.trim().split_once(':')?;
                k.trim().eq_ignore_ascii_case(key).then_some(v)
            })
            .flat_map(|v| v.split([' ', ',', '\t']).filter(|s| !s.is_empty()))
            .map(str::to_string)
            .collect()
    }

    fn available_modules(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.mods_available())
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .filter_map(|e| {
                        e.file_name()
                            .to_str()
                            .and_then(|n| n.strip_suffix(".load"))
                            .map(str::to_string)
                    })
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// The links that enable `wanted` and everything they depend on, in the
    /// order `a2enmod` would make them (dependencies first). Fails on a module
    /// that does not exist or that conflicts with an enabled one (another MPM).
    pub fn module_links(&self, wanted: &[String]) -> Result<Vec<ModLink>, InvalidInput> {
        let mut order: Vec<String> = Vec::new();
        let mut seen = BTreeSet::new();
        for m in wanted {
            self.visit(m, None, &mut seen, &mut order)?;
        }
        let mut links = Vec::new();
        for m in &order {
            for conflict in self.load_header(m, "Conflicts") {
                if self.module_enabled(&conflict) && !order.contains(&conflict) {
                    return Err(InvalidInput(format!(
                        "Apache module {m} conflicts with the enabled module {conflict}: disable {conflict} first (a2dismod {conflict})"
                    )));
                }
            }
            if self.module_enabled(m) {
                continue;
            }
            for ext in ["load", "conf"] {
                let file = format!("{m}.{ext}");
                if self.mods_available().join(&file).exists() {
                    links.push(ModLink {
                        module: m.clone(),
                        link: self.mods_enabled().join(&file),
                        target: Path::new("../mods-available").join(&file),
                    });
                }
            }
        }
        Ok(links)
    }

    fn visit(
        &self,
        module: &str,
        needed_by: Option<&str>,
        seen: &mut BTreeSet<String>,
        order: &mut Vec<String>,
    ) -> Result<(), InvalidInput> {
        if !seen.insert(module.to_string()) {
            return Ok(());
        }
        if !self
            .mods_available()
            .join(format!("{module}.load"))
            .is_file()
        {
            let by = needed_by
                .map(|b| format!(" (needed by {b})"))
                .unwrap_or_default();
            let available = self.available_modules();
            let close: Vec<&String> = available
                .iter()
                .filter(|a| a.contains(module) || module.contains(a.as_str()))
                .take(5)
                .collect();
            let hint = if close.is_empty() {
                String::new()
            } else {
                format!(
                    "; similar: {}",
                    close
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            return Err(InvalidInput(format!(
                "unknown Apache module {module}{by}: there is no {}{hint}",
                self.mods_available()
                    .join(format!("{module}.load"))
                    .display()
            )));
        }
        for dep in self.load_header(module, "Depends") {
            self.visit(&dep, Some(module), seen, order)?;
        }
        order.push(module.to_string());
        Ok(())
    }

    /// The ports the enabled `000-default` site's `<VirtualHost *:PORT>` blocks
    /// take (empty when it is disabled).
    pub fn default_site_ports(&self) -> Vec<u16> {
        // Only read: a byte that is not UTF-8 must not hide the whole file.
        let bytes = fs::read(self.site_link("000-default")).unwrap_or_default();
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter_map(|l| l.trim().strip_prefix("<VirtualHost"))
            .flat_map(|rest| {
                rest.trim_end_matches('>')
                    .split_whitespace()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .filter_map(|addr| {
                let (host, port) = addr.rsplit_once(':')?;
                matches!(host, "*" | "_default_" | "0.0.0.0" | "[::]")
                    .then(|| port.parse().ok())
                    .flatten()
            })
            .collect()
    }
}

/// Fake /etc/apache2 trees for unit tests.
#[cfg(test)]
pub(crate) mod fixture {
    use super::*;

    /// The empty module and site directories under `root`; markers go to
    /// `root/state`.
    pub(crate) fn empty_tree(root: &Path) -> Layout {
        let l = Layout::new(root, root.join("state"));
        for d in [
            l.mods_available(),
            l.mods_enabled(),
            l.sites_available(),
            l.sites_enabled(),
        ] {
            fs::create_dir_all(d).expect("mkdir");
        }
        l
    }

    /// Debian's 000-default site, enabled, on `port`.
    pub(crate) fn enable_default_site(l: &Layout, port: u16) {
        fs::write(
            l.site_file("000-default"),
            format!("<VirtualHost *:{port}>\n DocumentRoot /var/www/html\n</VirtualHost>\n"),
        )
        .expect("write");
        std::os::unix::fs::symlink(
            Layout::site_link_target("000-default"),
            l.site_link("000-default"),
        )
        .expect("link");
    }
}

#[cfg(test)]
mod tests {
    use super::fixture::{empty_tree, enable_default_site};
    use super::*;

    fn fake_apache() -> (tempfile::TempDir, Layout) {
        let dir = tempfile::tempdir().expect("tempdir");
        let l = empty_tree(dir.path());
        let ma = l.mods_available();
        let write = |name: &str, text: &str| fs::write(ma.join(name), text).expect("write");
        write("remoteip.load", "LoadModule remoteip_module x.so\n");
        write("proxy.load", "LoadModule proxy_module x.so\n");
        write("proxy.conf", "\n");
        write(
            "proxy_http.load",
            "# Depends: proxy\nLoadModule proxy_http_module x.so\n",
        );
        write("mpm_event.load", "# Conflicts: mpm_worker mpm_prefork\n");
        write("mpm_prefork.load", "# Conflicts: mpm_event mpm_worker\n");
        write("setenvif.load", "\n");
        std::os::unix::fs::symlink(
            "../mods-available/mpm_event.load",
            l.mods_enabled().join("mpm_event.load"),
        )
        .expect("link");
        std::os::unix::fs::symlink(
            "../mods-available/setenvif.load",
            l.mods_enabled().join("setenvif.load"),
        )
        .expect("link");
        (dir, l)
    }

    #[test]
    fn dependencies_come_first_with_conf_files() {
        let (_d, l) = fake_apache();
        let links = l
            .module_links(&["proxy_http".into(), "setenvif".into(), "remoteip".into()])
            .expect("links");
        let names: Vec<String> = links
            .iter()
            .map(|m| m.target.display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "../mods-available/proxy.load",
                "../mods-available/proxy.conf",
                "../mods-available/proxy_http.load",
                "../mods-available/remoteip.load"
            ]
        );
    }

    #[test]
    fn unknown_and_conflicting_modules_fail() {
        let (_d, l) = fake_apache();
        let e = l.module_links(&["rewrit".into()]).expect_err("unknown");
        assert!(
            e.0.starts_with("unknown Apache module rewrit: there is no "),
            "{e}"
        );
        let e = l
            .module_links(&["proxy".into(), "remote".into()])
            .expect_err("unknown");
        assert!(e.0.contains("similar: remoteip"), "{e}");
        let e = l
            .module_links(&["mpm_prefork".into()])
            .expect_err("conflict");
        assert!(
            e.0.contains("conflicts with the enabled module mpm_event"),
            "{e}"
        );
    }

    #[test]
    fn default_site_ports_are_read_from_the_enabled_site() {
        let (_d, l) = fake_apache();
        assert!(l.default_site_ports().is_empty());
        enable_default_site(&l, 80);
        assert_eq!(l.default_site_ports(), vec![80]);
    }
}
