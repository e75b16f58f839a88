//! The header-split decision (DESIGN.md "Header split"). CONTRACT; implementation pending.
