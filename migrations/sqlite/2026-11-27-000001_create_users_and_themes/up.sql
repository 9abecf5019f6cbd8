-- Registered people, the themes they follow, and the link between them.
CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    nickname TEXT NOT NULL COLLATE NOCASE,
    -- argon2id PHC string; never the password itself
    password_hash TEXT NOT NULL,
    can_video BOOLEAN NOT NULL DEFAULT 1,
    can_audio BOOLEAN NOT NULL DEFAULT 1,
    can_text BOOLEAN NOT NULL DEFAULT 1,
    role TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    banned BOOLEAN NOT NULL DEFAULT 0,
    -- unix milliseconds
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT,
    CONSTRAINT USERS_UK UNIQUE (nickname)
);

CREATE TABLE themes (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    name TEXT NOT NULL COLLATE NOCASE,
    description TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    CONSTRAINT THEMES_UK UNIQUE (name)
);

-- Deleting a theme or a user removes only the links: followers simply stop following it.
CREATE TABLE user_themes (
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    theme_id BIGINT NOT NULL REFERENCES themes (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, theme_id)
);
CREATE INDEX user_themes_theme ON user_themes (theme_id);

INSERT INTO themes (name, description, created_at) VALUES
    ('Tecnologia', 'Programação, hardware, software livre e o que vem por aí — technology, programming and open source.', 0),
    ('Jogos', 'Videogames, jogos de tabuleiro e RPG: quem joga o quê e onde — video, board and role-playing games.', 0),
    ('Futebol', 'Campeonatos, seleções, táticas e a rodada do fim de semana — football, leagues and tactics.', 0),
    ('Basquete', 'NBA, NBB, basquete 3x3 e fundamentos — basketball, leagues and fundamentals.', 0),
    ('Música', 'Ouvir, tocar e compor: de MPB a metal — listening, playing and writing music.', 0),
    ('Cinema e Séries', 'Estreias, clássicos e o que maratonar — films, series and what to watch next.', 0),
    ('Livros', 'Clubes de leitura, ficção, não ficção e poesia — book clubs, fiction and non-fiction.', 0),
    ('Idiomas', 'Troca de idiomas e conversação — language exchange and conversation practice.', 0);
