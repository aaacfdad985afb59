-- memorydb: embeddings as pgvector's vector(384), searched by an HNSW index
-- on cosine distance, as AI applications keep them.
--
-- It needs a server with pgvector: the default memorydb image,
-- pgvector/pgvector:pg17 (built locally as aidb.local/pgvector:pg17 where it
-- cannot be pulled). A database made before it holds real[384]: the cast
-- converts those rows in place.

-- +goose Up
CREATE EXTENSION IF NOT EXISTS vector;
ALTER TABLE memories DROP CONSTRAINT memories_embedding_dimension;
ALTER TABLE memories ALTER COLUMN embedding TYPE vector(384) USING embedding::vector(384);
CREATE INDEX memories_embedding_hnsw ON memories USING hnsw (embedding vector_cosine_ops);

-- +goose Down
DROP INDEX memories_embedding_hnsw;
ALTER TABLE memories ALTER COLUMN embedding TYPE real[] USING embedding::real[];
ALTER TABLE memories ADD CONSTRAINT memories_embedding_dimension CHECK (cardinality(embedding) = 384);
DROP EXTENSION vector;
