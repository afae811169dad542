//! Search results as a person reads them: one per page.

use docbrain_core::SearchHit;
use serde::Serialize;

/// One page among search results: its best chunk, and the headings of its other chunks that
/// matched, best first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct PageHit {
    /// The page's best chunk, with every field of a hit.
    #[serde(flatten)]
    pub(crate) best: SearchHit,
    /// The heading paths of the page's other matching chunks.
    pub(crate) other_sections: Vec<Vec<String>>,
}

/// Groups chunk hits (best first) by page, keeping the pages in the order of their best
/// chunk: what a person reads as "the top pages".
pub(crate) fn by_page(hits: Vec<SearchHit>) -> Vec<PageHit> {
    let mut pages: Vec<PageHit> = Vec::new();
    for hit in hits {
        match pages.iter_mut().find(|p| p.best.page_id == hit.page_id) {
            Some(page) => {
                if hit.heading_path != page.best.heading_path
                    && !page.other_sections.contains(&hit.heading_path)
                {
                    page.other_sections.push(hit.heading_path);
                }
            }
            None => pages.push(PageHit {
                best: hit,
                other_sections: Vec::new(),
            }),
        }
    }
    pages
}

#[cfg(test)]
mod tests {
    use docbrain_core::PageId;

    use super::*;

    fn hit(page: &str, path: &[&str], text: &str) -> SearchHit {
        SearchHit {
            chunk_id: format!("{page}-{}", path.len()),
            page_id: page.into(),
            title: format!("Page {page}"),
            space_key: "ENG".into(),
            heading_path: path.iter().map(|s| (*s).to_owned()).collect(),
            url: None,
            text: text.into(),
            score: 0.03,
        }
    }

    #[test]
    fn hits_group_by_page_naming_the_other_sections() {
        let pages = by_page(vec![
            hit("1", &["Deploy", "Rollback"], "a"),
            hit("2", &["Pager"], "b"),
            hit("1", &["Deploy", "Canary"], "c"),
            hit("1", &["Deploy", "Rollback"], "d"),
        ]);
        assert_eq!(pages.len(), 2);
        assert_eq!(pages[0].best.text, "a");
        assert_eq!(
            pages[0].other_sections,
            [vec!["Deploy".to_owned(), "Canary".to_owned()]]
        );
        assert_eq!(pages[1].best.page_id, PageId::from("2"));
        let json = serde_json::to_value(&pages[0]).unwrap();
        assert_eq!(json["chunk_id"], "1-2", "every field of the hit: {json}");
        assert_eq!(json["other_sections"][0][1], "Canary");
    }
}
