DROP TABLE user_themes;
DROP TABLE themes;
DROP TABLE users;
