-- The W3C trace context (traceparent) of the change that wrote the event, so that its delivery
-- continues that change's trace. NULL when the change was not traced, and for the events written
-- before this column.
ALTER TABLE outbox ADD COLUMN traceparent text CHECK (char_length(traceparent) <= 128);
