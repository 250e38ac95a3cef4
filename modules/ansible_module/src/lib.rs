//! The Ansible binary-module protocol.
//!
//! Ansible copies a binary module to the target, writes the task's arguments to a
//! JSON file and runs `<module> <args-file>`; the module prints exactly one JSON
//! object. This crate does everything around a module's own work: reading the
//! arguments, validating them the way `AnsibleModule` does (same coercion, same
//! messages), check and diff mode, `no_log` masking, the result JSON, and the one
//! way our modules write a config file (render to a temp file, validate with the
//! service's own checker, atomically rename).
//!
//! ```no_run
//! use ansible_module::{Module, ModuleSpec};
//!
//! fn main() {
//!     let spec = ModuleSpec::from_json(r#"{
//!         "argument_spec": {"name": {"type": "str", "required": true}},
//!         "supports_check_mode": true
//!     }"#);
//!     ansible_module::run("example", spec, |module: &mut Module| {
//!         let name = module.str("name").unwrap_or_default().to_string();
//!         module.set("greeting", format!("hello {name}"));
//!         Ok(())
//!     })
//! }
//! ```

mod args;
pub mod config_file;
pub mod dns_names;
mod entry;
mod mask;
mod module;
mod pyfmt;
pub mod service;
mod spec;
pub mod syntax;
pub mod units;
mod validate;

pub use args::{read_args_file, split_internal, InternalArgs};
pub use config_file::{ConfigFile, Validator, WriteOutcome};
pub use entry::{execute, run, run_with_args};
pub use mask::remove_values;
pub use module::{Diff, Fail, Module};
pub use spec::{Kind, ModuleSpec, OptionSpec, RequiredIf};
pub use validate::{validate, Validated};

/// The text Ansible puts in place of a value that came from a `no_log` option.
pub const NO_LOG_PLACEHOLDER: &str = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER";
