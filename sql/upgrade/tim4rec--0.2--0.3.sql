-- tim4rec 0.2 -> 0.3 (ALTER EXTENSION tim4rec UPDATE).  Each change made
-- to sql/install/*.sql after 0.2 has its counterpart here, in the same
-- order; test/pgtap/upgrade.sh checks that an updated database has the
-- same objects as a fresh install.  Every name is schema-qualified, as in
-- the install script.
\echo Use "ALTER EXTENSION tim4rec UPDATE TO '0.3'" to load this file. \quit
