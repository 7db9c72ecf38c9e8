
SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_table_access_method = heap;

CREATE TABLE public.api_tokens (
    id text NOT NULL,
    token_hash text NOT NULL,
    username text NOT NULL,
    record text NOT NULL,
    created_at double precision DEFAULT 0 NOT NULL
);

CREATE TABLE public.blobs (
    id text NOT NULL,
    data bytea NOT NULL,
    created_at double precision NOT NULL
);

CREATE TABLE public.budget_counters (
    key text NOT NULL,
    period_start double precision NOT NULL,
    spent double precision NOT NULL,
    reserved double precision NOT NULL
);

CREATE TABLE public.budget_reservations (
    id text NOT NULL,
    lines text NOT NULL,
    expires_at double precision NOT NULL
);

CREATE TABLE public.claims (
    id text NOT NULL,
    holder text NOT NULL,
    expires_at double precision NOT NULL
);

CREATE TABLE public.instances (
    instance_id text NOT NULL,
    heartbeat_at double precision NOT NULL,
    record text NOT NULL
);

CREATE TABLE public.lisa_leases (
    key bigint NOT NULL,
    holder text NOT NULL,
    confirmed_at double precision NOT NULL
);

CREATE TABLE public.lisa_schema (
    id integer NOT NULL,
    version integer NOT NULL
);

CREATE TABLE public.model_replicas (
    replica_id text NOT NULL,
    model_id text NOT NULL,
    record text NOT NULL,
    updated_at double precision NOT NULL
);

CREATE TABLE public.models (
    model_id text NOT NULL,
    definition text NOT NULL,
    created_at double precision NOT NULL,
    updated_at double precision NOT NULL,
    status text DEFAULT 'InService'::text NOT NULL,
    status_reason text
);

CREATE TABLE public.rate_buckets (
    key text NOT NULL,
    tokens double precision NOT NULL,
    updated_at double precision NOT NULL
);

CREATE TABLE public.records (
    kind text NOT NULL,
    id text NOT NULL,
    parent text,
    body text NOT NULL,
    created_at double precision NOT NULL,
    updated_at double precision NOT NULL,
    summary text
);

CREATE TABLE public.replica_seconds (
    model text NOT NULL,
    hour bigint NOT NULL,
    seconds double precision NOT NULL
);

CREATE TABLE public.settings (
    key text NOT NULL,
    value text NOT NULL
);

CREATE TABLE public.usage_records (
    id text NOT NULL,
    at double precision NOT NULL,
    hour bigint NOT NULL,
    request_id text NOT NULL,
    username text NOT NULL,
    token_id text,
    groups text NOT NULL,
    model text NOT NULL,
    served_by text,
    endpoint text,
    operation text NOT NULL,
    input_tokens bigint NOT NULL,
    output_tokens bigint NOT NULL,
    estimated bigint NOT NULL,
    duration_ms double precision NOT NULL,
    ttft_ms double precision,
    status text NOT NULL,
    cost double precision
);

INSERT INTO public.api_tokens VALUES ('tok_00112233445566778899aabb', 'b9a779f42b92f896352d550272de66837e0c39546fb73d39f71a3ab988755b40', 'alice', '{"createdAt":786096000.0,"createdBy":"admin","expiresAt":3092601600.0,"groups":["team"],"id":"tok_00112233445566778899aabb","isSystemToken":false,"name":"ci","tokenHash":"b9a779f42b92f896352d550272de66837e0c39546fb73d39f71a3ab988755b40","username":"alice"}', 1764403200);

INSERT INTO public.blobs VALUES ('upload-1', '\x000102ff', 1764403200);

INSERT INTO public.budget_counters VALUES ('user:alice', 1764403200, 1.25, 0.5);

INSERT INTO public.budget_reservations VALUES ('res-1', '[{"amount":0.5,"key":"user:alice","limit":10,"periodStart":1764403200}]', 1764403260);

INSERT INTO public.claims VALUES ('job-1', 'i-1', 1764403260);

INSERT INTO public.instances VALUES ('i-1', 1764403200, '{"heartbeatAt":1764403200.0,"hostname":"old-host","inFlight":{"chat-a":{"http://127.0.0.1:8001/v1":1}},"instanceId":"i-1","isLeader":true,"startedAt":1764403200.0}');

INSERT INTO public.lisa_leases VALUES (83877813092354, 'i-1', 1764403200);

INSERT INTO public.lisa_schema VALUES (1, 8);

INSERT INTO public.model_replicas VALUES ('r-1', 'chat-a', '{"backend":"local","modelId":"chat-a","replicaId":"r-1","restarts":2,"startedAt":1764403200.0,"state":"ready","url":"http://127.0.0.1:8001/v1"}', 1764403200);

INSERT INTO public.models VALUES ('chat-a', '{"allowedGroups":["team"],"endpoints":[],"futureField":{"kept":true},"inferenceContainer":"vllm","modelId":"chat-a","modelName":"llama-3","modelType":"textgen","modelUrl":"http://127.0.0.1:9/v1","streaming":true}', 1764403200, 1764403200, 'InService', NULL);
INSERT INTO public.models VALUES ('embed-b', '{"allowedGroups":[],"endpoints":[{"apiKey":"sk-old","url":"http://127.0.0.1:9/v1","weight":2}],"inferenceContainer":"tei","modelId":"embed-b","modelName":"bge","modelType":"embedding","streaming":false}', 1764403200, 1764403200, 'Stopped', 'stopped by an admin');

INSERT INTO public.rate_buckets VALUES ('user:alice', 3.5, 1764403200);

INSERT INTO public.records VALUES ('session', 'alices1', 'alice', '{"configuration":{"model":"chat-a"},"history":[{"content":"hello from an old schema","type":"human"},{"content":"hi","type":"ai"}],"lastUpdated":786096000.0,"name":"first chat","sessionId":"s1","startTime":786096000.0,"userId":"alice"}', 1764403200, 1764403200, '{"firstHumanMessage":"hello from an old schema","lastUpdated":786096000.0,"name":"first chat","sessionId":"s1","startTime":786096000.0}');
INSERT INTO public.records VALUES ('response', 'resp_fixture1', 'alice', '{"inputItems":[{"content":"hello","id":"msg_1","role":"user","type":"message"}],"messages":[{"content":"hello","role":"user"},{"content":"hi there","role":"assistant"}],"owner":"alice","response":{"created_at":1764403200,"id":"resp_fixture1","model":"chat-a","object":"response","output":[],"status":"completed"}}', 1764403200, 1764403200, '{"created_at":1764403200,"id":"resp_fixture1","model":"chat-a"}');
INSERT INTO public.records VALUES ('prompt-template', 'tpl-1', NULL, '{"body":"Be brief.","created":786096000.0,"groups":["lisa:public"],"id":"tpl-1","owner":"alice","revision":1,"title":"Brief","type":"persona","updated":786096000.0}', 1764403200, 1764403200, NULL);
INSERT INTO public.records VALUES ('rag.repository', 'docs', NULL, '{"allowedGroups":["team"],"chunkOverlap":50,"chunkSize":500,"createdAt":786096000.0,"createdBy":"alice","embeddingModelId":"embed-b","repositoryId":"docs","repositoryName":"Docs","type":"embedded"}', 1764403200, 1764403200, NULL);
INSERT INTO public.records VALUES ('rag.collection', 'docs--default', 'docs', '{"collectionId":"default","createdAt":786096000.0,"createdBy":"alice","dimension":3,"embeddingModelId":"embed-b","name":"Default","repositoryId":"docs"}', 1764403200, 1764403200, NULL);
INSERT INTO public.records VALUES ('rag.document', '6b5a2ae18fa0c7ce6fd2c6a0', 'docs', '{"chunks":2,"collectionId":"default","createdAt":786096000.0,"documentId":"6b5a2ae18fa0c7ce6fd2c6a0","documentName":"guide.txt","repositoryId":"docs","username":"alice"}', 1764403200, 1764403200, NULL);
INSERT INTO public.records VALUES ('rag.job', 'job-1', 'docs', '{"chunks":2,"collectionId":"default","createdAt":786096000.0,"documentId":"6b5a2ae18fa0c7ce6fd2c6a0","documentName":"guide.txt","jobId":"job-1","repositoryId":"docs","status":"COMPLETED","updatedAt":786096000.0,"username":"alice"}', 1764403200, 1764403200, NULL);

INSERT INTO public.replica_seconds VALUES ('chat-a', 1764403200, 1800);

INSERT INTO public.settings VALUES ('admin_key_sha256', '0ccd79c8737c9c10cbbda2370b694faa3d637449c8dca4ef2bccddb44182a7da');

INSERT INTO public.usage_records VALUES ('u-1', 1764403260, 1764403200, 'req-u-1', 'alice', 'tok_00112233445566778899aabb', ',team,', 'chat-a', 'http://127.0.0.1:9/v1', 'http://127.0.0.1:9/v1', 'chat', 10, 20, 0, 120, 30, 'ok', 0.5);
INSERT INTO public.usage_records VALUES ('u-2', 1764403320, 1764403200, 'req-u-2', 'alice', 'tok_00112233445566778899aabb', ',team,', 'chat-a', 'http://127.0.0.1:9/v1', 'http://127.0.0.1:9/v1', 'chat', 5, 0, 0, 120, NULL, 'error', NULL);
INSERT INTO public.usage_records VALUES ('u-3', 1764403380, 1764403200, 'req-u-3', 'bob', NULL, ',team,', 'embed-b', 'http://127.0.0.1:9/v1', 'http://127.0.0.1:9/v1', 'chat', 7, 0, 0, 120, 30, 'ok', 0.01);
INSERT INTO public.usage_records VALUES ('u-4', 1764406860, 1764406800, 'req-u-4', 'alice', 'tok_00112233445566778899aabb', ',team,', 'chat-a', 'http://127.0.0.1:9/v1', 'http://127.0.0.1:9/v1', 'chat', 1, 2, 0, 120, 30, 'ok', 0.25);

ALTER TABLE ONLY public.api_tokens
    ADD CONSTRAINT api_tokens_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.api_tokens
    ADD CONSTRAINT api_tokens_token_hash_key UNIQUE (token_hash);

ALTER TABLE ONLY public.blobs
    ADD CONSTRAINT blobs_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.budget_counters
    ADD CONSTRAINT budget_counters_pkey PRIMARY KEY (key, period_start);

ALTER TABLE ONLY public.budget_reservations
    ADD CONSTRAINT budget_reservations_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.claims
    ADD CONSTRAINT claims_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.instances
    ADD CONSTRAINT instances_pkey PRIMARY KEY (instance_id);

ALTER TABLE ONLY public.lisa_leases
    ADD CONSTRAINT lisa_leases_pkey PRIMARY KEY (key);

ALTER TABLE ONLY public.lisa_schema
    ADD CONSTRAINT lisa_schema_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.model_replicas
    ADD CONSTRAINT model_replicas_pkey PRIMARY KEY (replica_id);

ALTER TABLE ONLY public.models
    ADD CONSTRAINT models_pkey PRIMARY KEY (model_id);

ALTER TABLE ONLY public.rate_buckets
    ADD CONSTRAINT rate_buckets_pkey PRIMARY KEY (key);

ALTER TABLE ONLY public.records
    ADD CONSTRAINT records_pkey PRIMARY KEY (kind, id);

ALTER TABLE ONLY public.replica_seconds
    ADD CONSTRAINT replica_seconds_pkey PRIMARY KEY (model, hour);

ALTER TABLE ONLY public.settings
    ADD CONSTRAINT settings_pkey PRIMARY KEY (key);

ALTER TABLE ONLY public.usage_records
    ADD CONSTRAINT usage_records_pkey PRIMARY KEY (id);

CREATE INDEX api_tokens_username ON public.api_tokens USING btree (username);

CREATE INDEX model_replicas_model ON public.model_replicas USING btree (model_id);

CREATE INDEX records_parent ON public.records USING btree (kind, parent);

CREATE INDEX usage_records_at ON public.usage_records USING btree (at);

CREATE INDEX usage_records_user_at ON public.usage_records USING btree (username, at);

