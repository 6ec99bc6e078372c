-- Enrolling an agent id that has a live token needs a decision: an admin approves a takeover
-- (POST /admin/agents/{id}/takeover), which lets the next enrolment of that id within the window
-- replace the running agent's token. NULL: no takeover approved.
ALTER TABLE agents ADD COLUMN takeover_until timestamptz;
