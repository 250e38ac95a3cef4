//! Ansible dynamic inventory for LXD, speaking the script-inventory protocol
//! (`--list`, `--host NAME`, `_meta.hostvars`).
//!
//! One `GET /1.0/instances?recursion=2` gives every instance with its state and
//! addresses; [`inventory::Inventory::build`] turns it into groups and host
//! variables under a [`config::Config`].

pub mod cli;
pub mod config;
pub mod instance;
pub mod inventory;
