"""The console's screens: login, rooms, room, help and the small dialogs."""
