//! [`Sources`]: the sources this crate offers, built from settings.

use std::sync::Arc;

use docbrain_core::settings::SourceSettings;
use docbrain_core::{Fetcher, SourceBuilder};
use tracing::debug;

use crate::LocalFetcher;

/// Builds the source [`SourceSettings`] names: a [`LocalFetcher`] or (feature `rest`) a
/// [`crate::ConfluenceClient`]. Pass it to [`docbrain_core::Pipeline::from_settings`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Sources;

impl SourceBuilder for Sources {
    fn fetcher(
        &self,
        settings: &SourceSettings,
    ) -> docbrain_core::Result<Option<Arc<dyn Fetcher>>> {
        Ok(match settings {
            SourceSettings::None => None,
            SourceSettings::Local(local) => {
                let fetcher = LocalFetcher::new(&local.path, &local.space_key)?
                    .with_attachments(local.attachments.clone());
                debug!(folder = %fetcher.root().display(), space = %local.space_key, "source: a local folder");
                Some(Arc::new(fetcher))
            }
            #[cfg(feature = "rest")]
            SourceSettings::Confluence(site) => {
                let client = crate::ConfluenceClient::new(site.clone())?;
                debug!(api = %site.api_version, "source: Confluence");
                Some(Arc::new(client))
            }
            #[cfg(not(feature = "rest"))]
            SourceSettings::Confluence(_) => return Err(docbrain_core::Error::new(
                docbrain_core::ErrorKind::InvalidConfig,
                "SOURCE_TYPE=confluence needs docbrain-confluence built with its `rest` feature",
            )),
        })
    }
}
