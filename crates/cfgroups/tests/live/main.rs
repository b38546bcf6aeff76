//! The Cloudflare client and the live source over loopback HTTP: a scripted stub, the fake
//! API with every fault it can inject, the shared request budget under a burst, and the
//! credential kept out of every output, journal, report and metric.

mod budget;
mod cloudflare_client;
mod live_source;
mod secrets;
mod secrets_everywhere;
