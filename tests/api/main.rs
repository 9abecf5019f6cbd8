//! Integration tests: one binary, real servers on port 0, real HTTP and WebSocket clients.

mod accounts;
mod admin;
mod bench_smoke;
mod cli;
// The several-node harness is shared by the cluster tests of other files.
#[allow(dead_code)]
mod cluster;
mod cluster_bench;
mod cluster_calls;
mod cluster_faults;
mod cluster_presence;
// Its chat-storm helpers serve cluster_faults too.
mod cluster_rooms;
mod conversations;
mod crash;
mod database;
mod directory;
mod errors;
mod tls;
// Shared by every test file; not each of them uses every helper.
#[allow(dead_code)]
mod helpers;
mod layers;
mod metrics;
mod migrations;
mod openapi;
mod origins;
mod sessions;
mod themes;
mod ws_calls;
mod ws_chat;
// Shared by the WebSocket tests; not each of them uses every helper.
#[allow(dead_code)]
mod ws_client;
mod ws_credentials;
mod ws_frames;
mod ws_http;
mod ws_limits;
mod ws_over_http;
mod ws_presence;
mod ws_rooms;
mod ws_subscriptions;
