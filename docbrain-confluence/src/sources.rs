//! [`SourceSettings::fetcher`]: the source the settings name, built.

use std::sync::Arc;

use docbrain_core::{Fetcher, Result};
use tracing::debug;

use crate::settings::SourceSettings;
use crate::LocalFetcher;

impl SourceSettings {
    /// Builds the source these settings name: a [`LocalFetcher`] or (feature `rest`) a
    /// [`crate::ConfluenceClient`]; `None` for [`SourceSettings::None`] (a pipeline for search
    /// only).
    ///
    /// # Errors
    /// A setting the source cannot use (a missing folder, a malformed URL), named.
    pub fn fetcher(&self) -> Result<Option<Arc<dyn Fetcher>>> {
        Ok(match self {
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
            SourceSettings::Confluence(_) => return Err(crate::settings::invalid(
                "SOURCE_TYPE=confluence needs docbrain-confluence built with its `rest` feature",
            )),
        })
    }
}
