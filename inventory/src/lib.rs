//! Ansible dynamic inventory for LXD, speaking the script-inventory protocol
//! (`--list`, `--host NAME`, `_meta.hostvars`).
//!
//! Per LXD host (several hosts are read side by side, see
//! [`config::Config::hosts`]): one `GET /1.0/instances?recursion=1`, the DHCP
//! leases of the managed networks the instances are on ([`leases`]), and the
//! state of only those instances whose address the leases do not give, side
//! by side; or, with `address_source: state`, one `recursion=2` request that
//! makes LXD read every instance's state. [`inventory::Inventory::merge`]
//! turns the answers into groups and host variables under a
//! [`config::Config`].

pub mod cli;
pub mod config;
pub mod instance;
pub mod inventory;
pub mod leases;
