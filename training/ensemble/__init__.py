"""``octviewer-train ensemble``: several runs on one patient split become one bundle."""
