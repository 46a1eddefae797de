//! Orquesta workflows (being written).
