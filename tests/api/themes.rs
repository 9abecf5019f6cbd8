//! `GET /api/themes`.

use actix_web::http::StatusCode;

use crate::helpers::spawn_app;

#[actix_web::test]
async fn themes_are_listed_to_anyone_with_descriptions_and_follower_counts() {
    let app = spawn_app().await;
    app.user_with("ana", &["Jogos", "Futebol"], &["text"]).await;
    app.user_with("bia", &["Jogos"], &["text"]).await;

    let res = app.get("/api/themes", None).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let themes = res.body["themes"].as_array().expect("themes");
    let names: Vec<&str> = themes.iter().map(|t| t["name"].as_str().unwrap()).collect();
    for seeded in ["Basquete", "Futebol", "Jogos", "Tecnologia"] {
        assert!(names.contains(&seeded), "{names:?}");
    }
    let mut sorted = names.clone();
    sorted.sort_by_key(|n| n.to_lowercase());
    assert_eq!(names, sorted, "themes come by name");
    let followers = |name: &str| {
        themes.iter().find(|t| t["name"] == name).unwrap()["followers"]
            .as_i64()
            .unwrap()
    };
    assert_eq!(followers("Jogos"), 2);
    assert_eq!(followers("Futebol"), 1);
    assert_eq!(followers("Basquete"), 0);
    for theme in themes {
        assert!(theme["id"].is_i64());
        assert!(
            theme["description"].as_str().unwrap().len() > 20,
            "every shipped theme is described: {theme}"
        );
    }
}
