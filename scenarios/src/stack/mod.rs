//! The collaborative-editor stack, composed once (see the module docs of each part).

pub mod acked;
pub mod admin;
pub mod attacker;
pub mod build;
pub mod check;
pub mod durable_read;
pub mod editor;
pub mod editor_core;
pub mod observe;
pub mod reconnect;
pub mod save_latency;
pub mod services;
pub mod spec;
pub mod trace;
pub mod typist;
pub mod users;
pub mod verifier;
pub mod ydoc;
