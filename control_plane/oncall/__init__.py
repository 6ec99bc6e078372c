"""People and on-call schedules: who an escalation level pages when it targets a person
(``user:<id>``) or a rotation (``schedule:<id>``). Records and validation in :mod:`.model`, the
schedule maths in :mod:`.schedule`, PostgreSQL in :mod:`.store`, the channels that reach a
person in :mod:`.channels` (imported by the notifier, not here: it depends on the alerting
package, which depends on this one)."""
