//! Requests dropped by their clients at any point leave nothing behind (issue 10, ADR 0013).
