"""People: users (admins, agents, requesters), teams and team membership."""
