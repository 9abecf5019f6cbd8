// @generated automatically by Diesel CLI.

diesel::table! {
    calls (id) {
        id -> BigInt,
        call_key -> Text,
        room_id -> Nullable<BigInt>,
        caller_id -> BigInt,
        callee_id -> BigInt,
        media -> Text,
        state -> Text,
        created_at -> BigInt,
        answered_at -> Nullable<BigInt>,
        ended_at -> Nullable<BigInt>,
        seen_by_callee -> Bool,
        owner_node -> Nullable<Text>,
    }
}

diesel::table! {
    messages (id) {
        id -> BigInt,
        room_id -> BigInt,
        sender_id -> BigInt,
        client_msg_id -> Text,
        body -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    room_members (room_id, user_id) {
        room_id -> BigInt,
        user_id -> BigInt,
        joined_at -> BigInt,
        last_read_msg_id -> BigInt,
    }
}

diesel::table! {
    rooms (id) {
        id -> BigInt,
        name -> Text,
        kind -> Text,
        created_by -> Nullable<BigInt>,
        created_at -> BigInt,
    }
}

diesel::table! {
    sessions (id) {
        id -> BigInt,
        token_hash -> Text,
        user_id -> BigInt,
        created_at -> BigInt,
        expires_at -> BigInt,
        last_used_at -> BigInt,
        user_agent -> Nullable<Text>,
    }
}

diesel::table! {
    theme_descriptions (theme_id, language) {
        theme_id -> BigInt,
        language -> Text,
        description -> Text,
    }
}

diesel::table! {
    themes (id) {
        id -> BigInt,
        name -> Text,
        description -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    user_themes (user_id, theme_id) {
        user_id -> BigInt,
        theme_id -> BigInt,
    }
}

diesel::table! {
    users (id) {
        id -> BigInt,
        nickname -> Text,
        password_hash -> Text,
        can_video -> Bool,
        can_audio -> Bool,
        can_text -> Bool,
        role -> Text,
        banned -> Bool,
        created_at -> BigInt,
        last_seen_at -> Nullable<BigInt>,
    }
}

diesel::joinable!(calls -> rooms (room_id));
diesel::joinable!(messages -> rooms (room_id));
diesel::joinable!(messages -> users (sender_id));
diesel::joinable!(room_members -> rooms (room_id));
diesel::joinable!(room_members -> users (user_id));
diesel::joinable!(rooms -> users (created_by));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(theme_descriptions -> themes (theme_id));
diesel::joinable!(user_themes -> themes (theme_id));
diesel::joinable!(user_themes -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    calls,
    messages,
    room_members,
    rooms,
    sessions,
    theme_descriptions,
    themes,
    user_themes,
    users,
);
