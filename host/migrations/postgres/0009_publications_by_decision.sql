-- Replays look publications up by decision.
CREATE INDEX publications_by_decision ON publications (decision_id);
