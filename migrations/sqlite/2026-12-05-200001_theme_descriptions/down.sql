DROP TABLE theme_descriptions;
