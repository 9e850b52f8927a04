//! The database boundary against the server's own role (issue 10, ADR 0013): an attacker who can
//! run any SQL as the web role, with its real credentials, tries every way past it.
