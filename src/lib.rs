//! Aralez
