//! The simulator answers in the shapes of Atlassian's published OpenAPI documents (the fragments
//! captured beside the checkout; opt-in, as scripts/test.sh runs them): required fields present, and no field the schema does not define.

use std::path::PathBuf;

use docbrain_confluence::simulator::{Simulator, API_TOKEN, EMAIL, PAT};
use serde_json::Value;

fn schemas(file: &str) -> Value {
    let root = std::env::var_os("DOCBRAIN_CAPTURED_FIXTURES")
        .expect("DOCBRAIN_CAPTURED_FIXTURES is not set: run scripts/test.sh, which sets it when the captured fixtures exist");
    let path = PathBuf::from(root).join("rest/openapi").join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (the captured fixtures)", path.display()));
    serde_json::from_str::<Value>(&text).unwrap()["components"]["schemas"].clone()
}

/// Checks `value` against schema `name`: required fields present, every field defined.
fn conforms(all: &Value, name: &str, value: &Value, at: &str) {
    let schema = &all[name];
    assert!(schema.is_object(), "no schema {name}");
    let properties = schema["properties"].as_object().unwrap();
    for required in schema["required"].as_array().into_iter().flatten() {
        let key = required.as_str().unwrap();
        assert!(
            value.get(key).is_some(),
            "{at}: {name} requires {key}: {value}"
        );
    }
    for key in value.as_object().unwrap().keys() {
        assert!(
            properties.contains_key(key),
            "{at}: {name} defines no field {key}"
        );
    }
}

async fn get(url: String, v2: bool) -> Value {
    let client = reqwest::Client::new();
    let request = if v2 {
        client.get(url).basic_auth(EMAIL, Some(API_TOKEN))
    } else {
        client.get(url).bearer_auth(PAT)
    };
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
#[ignore = "reads the captured fixtures: scripts/test.sh runs it with DOCBRAIN_CAPTURED_FIXTURES"]
async fn captured_v2_answers_follow_the_cloud_openapi_document() {
    let all = schemas("cloud-v2.pages-spaces.fragment.json");
    let sim = Simulator::start().await.unwrap();
    let root = sim.create_page("ENG", "Home", "<p>home</p>");
    let id = sim.create_child("ENG", "Child", "<p>child</p>", Some(&root));
    sim.set_labels(&id, &["a"]);
    let base = sim.base_url_v2();

    let spaces = get(format!("{base}/api/v2/spaces?keys=ENG"), true).await;
    for space in spaces["results"].as_array().unwrap() {
        conforms(&all, "SpaceBulk", space, "GET /spaces");
    }
    conforms(
        &all,
        "MultiEntityLinks",
        &spaces["_links"],
        "GET /spaces _links",
    );
    let space_id = spaces["results"][0]["id"].as_str().unwrap().to_owned();

    let pages = get(
        format!("{base}/api/v2/spaces/{space_id}/pages?limit=1"),
        true,
    )
    .await;
    for page in pages["results"].as_array().unwrap() {
        conforms(&all, "PageBulk", page, "GET /spaces/{id}/pages");
        conforms(&all, "Version", &page["version"], "page version");
    }
    assert!(
        pages["_links"]["next"].is_string(),
        "a next link on a short page"
    );

    let page = get(
        format!("{base}/api/v2/pages/{id}?body-format=storage&include-labels=true"),
        true,
    )
    .await;
    conforms(&all, "PageSingle", &page, "GET /pages/{id}");
    assert_eq!(page["body"]["storage"]["value"], "<p>child</p>");
    for label in page["labels"]["results"].as_array().unwrap() {
        conforms(&all, "Label", label, "label");
    }
}

#[tokio::test]
#[ignore = "reads the captured fixtures: scripts/test.sh runs it with DOCBRAIN_CAPTURED_FIXTURES"]
async fn captured_v1_answers_follow_the_content_openapi_document() {
    let all = schemas("cloud-v1.content.fragment.2021-11.json");
    let sim = Simulator::start().await.unwrap();
    let root = sim.create_page("ENG", "Home", "<p>home</p>");
    let id = sim.create_child("ENG", "Child", "<p>child</p>", Some(&root));
    let base = sim.base_url_v1();

    let list = get(
        format!("{base}/rest/api/content?spaceKey=ENG&type=page&limit=1&expand=version"),
        false,
    )
    .await;
    conforms(&all, "ContentArray", &list, "GET /content");
    for content in list["results"].as_array().unwrap() {
        conforms(&all, "Content", content, "listed content");
        conforms(&all, "Version", &content["version"], "listed version");
    }
    // Expanded as the client asks (v1 returns only what `expand` names).
    let content = get(
        format!("{base}/rest/api/content/{id}?expand=body.storage,version,space,ancestors,metadata.labels"),
        false,
    )
    .await;
    conforms(&all, "Content", &content, "GET /content/{id}");
    conforms(&all, "Space", &content["space"], "content space");
    conforms(&all, "Version", &content["version"], "content version");
    for ancestor in content["ancestors"].as_array().unwrap() {
        conforms(&all, "Content", ancestor, "ancestor");
    }
    conforms(&all, "LabelArray", &content["metadata"]["labels"], "labels");
}
