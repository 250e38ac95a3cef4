//! `lxd_instance`: an Ansible module that creates, configures, starts, stops,
//! freezes and deletes LXD instances through the LXD API (unix socket or
//! HTTPS with a pinned server certificate), with cloud-init data and waits
//! for DHCP addresses and cloud-init's first boot.

mod batch;
mod engine;
mod params;
mod plan;
mod wait;

use ansible_module::ModuleSpec;

fn main() {
    ansible_module::run(
        "lxd_instance",
        ModuleSpec::from_json(params::SPEC),
        engine::run,
    )
}
