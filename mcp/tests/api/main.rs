mod auth;
mod bad_input;
mod helpers;
mod pipeline;
mod sandbox;
