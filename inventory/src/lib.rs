//! Ansible dynamic inventory for LXD, speaking the script-inventory protocol
//! (`--list`, `--host NAME`, `_meta.hostvars`).
//!
//! One `GET /1.0/instances?recursion=2` per LXD host (several hosts are read
//! side by side, see [`config::Config::hosts`]) gives every instance with its
//! state and addresses; [`inventory::Inventory::merge`] turns the answers into
//! groups and host variables under a [`config::Config`].

pub mod cli;
pub mod config;
pub mod instance;
pub mod inventory;
