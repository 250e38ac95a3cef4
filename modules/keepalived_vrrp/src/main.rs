//! `keepalived_vrrp`: one VRRP instance in keepalived.conf, HAProxy tracked
//! through systemd without polling, and the VIP holder and instance states as
//! facts.

mod checks;
mod conf;
mod facts;
#[cfg(test)]
mod hostile;
mod module;
mod net;
mod params;
mod track;

use ansible_module::ModuleSpec;

fn main() {
    ansible_module::run(
        "keepalived_vrrp",
        ModuleSpec::from_json(params::SPEC),
        module::run,
    )
}
