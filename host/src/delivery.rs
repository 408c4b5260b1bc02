//! The delivery worker: in `live` mode, hands each queued publication to its
//! provider, once.
//!
//! A publication is marked `delivering` before the provider is called, and
//! its outcome is recorded after: the provider's post id (`delivered`), a
//! failure that never reached the provider (`failed`, and the charge is
//! reversed), or an unknown outcome (`unknown`, never retried blindly). A
//! worker that dies mid-call leaves the publication `delivering`; after
//! [`ABANDON_AFTER`] any worker marks it `unknown`. Several host processes
//! can run workers on one database: claiming is a guarded update.

use std::path::PathBuf;
use std::time::Duration;

use crate::model::PublishingMode;
use crate::providers::{Post, provider};
use crate::secrets::SecretBox;
use crate::store::{Delivered, Delivery, Store};

/// How long an idle worker waits before looking for work again.
const IDLE: Duration = Duration::from_millis(100);
/// How long a delivery may stay `delivering` before it is given up as `unknown`.
pub const ABANDON_AFTER: Duration = Duration::from_secs(120);

/// Delivers queued publications until the process ends.
pub async fn run<S: Store>(store: S, secrets: SecretBox, local_dir: PathBuf) {
    let mut abandoned_check = tokio::time::Instant::now();
    loop {
        if abandoned_check.elapsed() >= IDLE * 50 {
            abandoned_check = tokio::time::Instant::now();
            let cutoff = humantime::format_rfc3339_micros(std::time::SystemTime::now() - ABANDON_AFTER).to_string();
            match store.abandon_deliveries(&cutoff).await {
                Ok(0) => {}
                Ok(n) => tracing::warn!(publications = n, "interrupted deliveries marked unknown"),
                Err(err) => tracing::error!(error = %err, "cannot look for interrupted deliveries"),
            }
        }
        match step(&store, &secrets, &local_dir).await {
            Ok(true) => {}
            Ok(false) => tokio::time::sleep(IDLE).await,
            Err(err) => {
                tracing::error!(error = %err, "delivery worker");
                tokio::time::sleep(IDLE * 10).await;
            }
        }
    }
}

/// Delivers one publication if there is one to deliver now; says whether it did.
async fn step<S: Store>(store: &S, secrets: &SecretBox, local_dir: &std::path::Path) -> anyhow::Result<bool> {
    let flags = store.flags().await?;
    // Nothing leaves while the product is in preview or the kill switch is on.
    if flags.publishing_mode != PublishingMode::Live || flags.kill_switch {
        return Ok(false);
    }
    let Some(delivery) = store.claim_delivery().await? else {
        return Ok(false);
    };
    let (secrets, local_dir) = (secrets.clone(), local_dir.to_owned());
    let id = delivery.publication_id.clone();
    // Providers block (files, network): off the async workers.
    let delivered = tokio::task::spawn_blocking(move || deliver(&delivery, &secrets, &local_dir))
        .await
        .unwrap_or_else(|err| Delivered::Unknown(format!("the delivery crashed: {err}")));
    match &delivered {
        Delivered::Posted(post_id) => tracing::info!(publication = id, post_id, "delivered"),
        Delivered::NotSent(why) => tracing::warn!(publication = id, why, "not delivered; charge reversed"),
        Delivered::Unknown(why) => tracing::error!(publication = id, why, "delivery outcome unknown; not retried"),
    }
    store.finish_delivery(&id, "delivering", &delivered).await?;
    Ok(true)
}

fn deliver(delivery: &Delivery, secrets: &SecretBox, local_dir: &std::path::Path) -> Delivered {
    let Some(adapter) = provider(&delivery.provider) else {
        return Delivered::NotSent(format!("this server has no `{}` provider", delivery.provider));
    };
    let Some(sealed) = &delivery.sealed_token else {
        return Delivered::NotSent("the destination was disconnected".into());
    };
    let Ok(token) = secrets.open(sealed, &delivery.destination_id) else {
        return Delivered::NotSent("the destination's token cannot be unsealed".into());
    };
    adapter.deliver(&Post {
        publication_id: &delivery.publication_id,
        token: &token,
        text: &delivery.text,
        media: &delivery.media,
        local_dir,
    })
}
