//! LXD REST client.
