-- A theme's description in each language the app speaks (issue 20): one row per theme and
-- language, so each language page reads whole sentences in its own language. The old
-- `themes.description` stays, as the text shown when a language has no row.
CREATE TABLE theme_descriptions (
    theme_id BIGINT NOT NULL REFERENCES themes (id) ON DELETE CASCADE,
    -- a BCP 47 tag the app offers: 'en' or 'pt-BR'
    language TEXT NOT NULL,
    description TEXT NOT NULL,
    PRIMARY KEY (theme_id, language)
);

-- The shipped themes, each in both languages (their old descriptions mixed the two).
INSERT INTO theme_descriptions (theme_id, language, description)
SELECT id, 'pt-BR', CASE name
    WHEN 'Tecnologia' THEN 'Programação, hardware, software livre e o que vem por aí.'
    WHEN 'Jogos' THEN 'Videogames, jogos de tabuleiro e RPG: quem joga o quê e onde.'
    WHEN 'Futebol' THEN 'Campeonatos, seleções, táticas e a rodada do fim de semana.'
    WHEN 'Basquete' THEN 'NBA, NBB, basquete 3x3 e fundamentos.'
    WHEN 'Música' THEN 'Ouvir, tocar e compor: de MPB a metal.'
    WHEN 'Cinema e Séries' THEN 'Estreias, clássicos e o que maratonar.'
    WHEN 'Livros' THEN 'Clubes de leitura, ficção, não ficção e poesia.'
    WHEN 'Idiomas' THEN 'Troca de idiomas e conversação.'
END
FROM themes
WHERE created_at = 0
  AND name IN ('Tecnologia', 'Jogos', 'Futebol', 'Basquete', 'Música', 'Cinema e Séries', 'Livros', 'Idiomas');

INSERT INTO theme_descriptions (theme_id, language, description)
SELECT id, 'en', CASE name
    WHEN 'Tecnologia' THEN 'Programming, hardware, open source and what comes next.'
    WHEN 'Jogos' THEN 'Video, board and role-playing games: who plays what, and where.'
    WHEN 'Futebol' THEN 'Football: leagues, national teams, tactics and the weekend''s matches.'
    WHEN 'Basquete' THEN 'Basketball: NBA, NBB, 3x3 and the fundamentals.'
    WHEN 'Música' THEN 'Listening, playing and writing music, from MPB to metal.'
    WHEN 'Cinema e Séries' THEN 'Films and series: premieres, classics and what to watch next.'
    WHEN 'Livros' THEN 'Book clubs, fiction, non-fiction and poetry.'
    WHEN 'Idiomas' THEN 'Language exchange and conversation practice.'
END
FROM themes
WHERE created_at = 0
  AND name IN ('Tecnologia', 'Jogos', 'Futebol', 'Basquete', 'Música', 'Cinema e Séries', 'Livros', 'Idiomas');
