//! The game projection compiled natively, behind ferry's
//! [`ferry::NativeProjection`]: the same logic as the Wasm plugin, through
//! the same pipeline, without the sandbox — what the benchmark compares
//! the Wasm plugin with.

use ferry::plugin::{HandleError, Handled};
use ferry_sdk::native::SqliteStore;
use ferry_sdk::{Header, Projection};
use game_projection::GameProjection;

/// The game projection as a native projection.
#[derive(Debug, Default)]
pub struct NativeGames;

impl ferry::NativeProjection for NativeGames {
    fn version(&self) -> String {
        format!("{}-native", GameProjection::VERSION)
    }

    fn schema(&self) -> u32 {
        GameProjection::SCHEMA
    }

    fn migrate(&mut self, conn: &rusqlite::Connection, from: Option<u32>) -> Result<(), String> {
        GameProjection::migrate(&SqliteStore::new(conn), from)
    }

    fn handle(
        &mut self,
        conn: &rusqlite::Connection,
        event: &ferry::Event,
        event_type: &str,
    ) -> Result<Handled, HandleError> {
        // The same view of the event a plugin's handler gets (the headers
        // copied, as a plugin that reads them gets them).
        let headers: Vec<Header> = event
            .headers
            .iter()
            .map(|(name, value)| Header {
                name: name.clone(),
                value: value.clone(),
            })
            .collect();
        let mut ev = ferry_sdk::Event::new(event_type, &event.payload).with_headers(&headers);
        ev.source = &event.source;
        ev.partition = event.partition;
        ev.offset = event.offset;
        ev.key = event.key.as_deref();
        ev.timestamp_ms = event.timestamp_ms;
        match game_projection::apply(&SqliteStore::new(conn), &ev, GameProjection::VERSION) {
            Ok(ferry_sdk::Handled::Applied) => Ok(Handled::Applied),
            Ok(ferry_sdk::Handled::Skipped(r)) => Ok(Handled::Skipped(r)),
            Err(ferry_sdk::HandleError::Retryable(m)) => Err(HandleError::Retryable(m)),
            Err(ferry_sdk::HandleError::Permanent(m)) => Err(HandleError::Permanent(m)),
        }
    }
}
