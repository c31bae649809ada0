//! The application: what a request means and what the answer says, with no fds and no I/O.
//! The server's sessions ask [`router::route`] where a request goes and build the answer's
//! bytes from [`api`]; they own the sockets and the sends.

pub mod access_log;
pub mod api;
pub mod auth;
pub mod console;
pub mod router;
