//! `tertulia migrate-data`
