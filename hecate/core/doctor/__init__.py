"""`hecate doctor`'s verdicts (pure): findings, and what each probe's outcome means."""
