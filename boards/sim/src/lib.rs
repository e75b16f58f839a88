//! The sim board (issue 5).
