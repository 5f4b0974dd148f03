/**
 * Short authentication string: five words that every participant reads out loud.
 *
 * Derived from the participant ids and public keys the page knows (sorted, hashed with
 * SHA-256): if the server swapped a public key to read along, the words differ between
 * screens. It changes whenever someone joins or leaves. The German and English lists
 * share their indexes, so "Apfel" on one screen and "apple" on another are the same word.
 */

export const WORDS_EN = Object.freeze([
  "apple", "anchor", "ant", "arrow", "axe", "baby", "ball", "banana", "barn", "basket", "bat",
  "bean", "bear", "bed", "bee", "beetle", "bell", "belt", "bench", "bicycle", "bird", "blanket",
  "boat", "bone", "book", "boot", "bottle", "bowl", "box", "bread", "brick", "bridge", "broom",
  "brush", "bucket", "butter", "button", "cabbage", "cake", "camel", "candle", "canoe", "car",
  "carpet", "carrot", "castle", "cat", "chair", "cheese", "cherry", "chess", "chicken", "church",
  "circle", "clock", "cloud", "coat", "coin", "comb", "compass", "cookie", "corn", "cow", "crab",
  "crown", "cup", "curtain", "deer", "desk", "diamond", "dice", "dog", "dolphin", "donkey",
  "door", "dragon", "drum", "duck", "eagle", "ear", "egg", "elephant", "envelope", "eye",
  "feather", "fence", "field", "finger", "fire", "fish", "flag", "flower", "flute", "fog",
  "fork", "fountain", "fox", "frog", "garden", "gate", "gift", "giraffe", "glass", "glove",
  "goat", "gold", "goose", "grape", "grass", "guitar", "hammer", "hand", "harbor", "hat",
  "hedgehog", "helmet", "hill", "honey", "horn", "horse", "house", "ice", "island", "jacket",
  "jewel", "kettle", "key", "knife", "ladder", "ladle", "lake", "lamp", "leaf", "lemon",
  "letter", "lighthouse", "lion", "lizard", "map", "maple", "mask", "meadow", "melon", "mill",
  "mirror", "mole", "moon", "moss", "mountain", "mouse", "mushroom", "nail", "needle", "nest",
  "net", "nut", "oak", "oar", "ocean", "onion", "orange", "otter", "owl", "ox", "paddle", "palm",
  "pan", "panda", "paper", "parrot", "peach", "pear", "pearl", "pen", "penguin", "pepper",
  "piano", "pig", "pillow", "pipe", "plate", "plum", "pocket", "pond", "potato", "pot",
  "pumpkin", "puzzle", "queen", "rabbit", "radio", "rain", "rainbow", "raven", "ring", "river",
  "road", "robot", "rock", "roof", "rope", "rose", "salt", "sand", "saw", "scarf", "scissors",
  "sheep", "shell", "ship", "shoe", "shovel", "sled", "snail", "snake", "snow", "sock", "sofa",
  "spider", "spoon", "squirrel", "star", "stone", "stork", "strawberry", "sun", "swan", "sword",
  "table", "tent", "tiger", "tomato", "tower", "tractor", "train", "tree", "trumpet", "tulip",
  "turtle", "umbrella", "valley", "vase", "violin", "wagon", "wall", "walnut", "wasp", "water",
  "whale", "wheel", "window", "wolf", "wood", "worm", "yacht", "zebra",
]);

export const WORDS_DE = Object.freeze([
  "Apfel", "Anker", "Ameise", "Pfeil", "Axt", "Baby", "Ball", "Banane", "Scheune", "Korb",
  "Fledermaus", "Bohne", "Bär", "Bett", "Biene", "Käfer", "Glocke", "Gürtel", "Bank", "Fahrrad",
  "Vogel", "Decke", "Boot", "Knochen", "Buch", "Stiefel", "Flasche", "Schüssel", "Kiste", "Brot",
  "Ziegel", "Brücke", "Besen", "Pinsel", "Eimer", "Butter", "Knopf", "Kohl", "Kuchen", "Kamel",
  "Kerze", "Kanu", "Auto", "Teppich", "Karotte", "Burg", "Katze", "Stuhl", "Käse", "Kirsche",
  "Schach", "Huhn", "Kirche", "Kreis", "Uhr", "Wolke", "Mantel", "Münze", "Kamm", "Kompass",
  "Keks", "Mais", "Kuh", "Krabbe", "Krone", "Tasse", "Vorhang", "Hirsch", "Schreibtisch",
  "Diamant", "Würfel", "Hund", "Delfin", "Esel", "Tür", "Drache", "Trommel", "Ente", "Adler",
  "Ohr", "Ei", "Elefant", "Umschlag", "Auge", "Feder", "Zaun", "Feld", "Finger", "Feuer",
  "Fisch", "Fahne", "Blume", "Flöte", "Nebel", "Gabel", "Brunnen", "Fuchs", "Frosch", "Garten",
  "Tor", "Geschenk", "Giraffe", "Glas", "Handschuh", "Ziege", "Gold", "Gans", "Traube", "Gras",
  "Gitarre", "Hammer", "Hand", "Hafen", "Hut", "Igel", "Helm", "Hügel", "Honig", "Horn", "Pferd",
  "Haus", "Eis", "Insel", "Jacke", "Juwel", "Kessel", "Schlüssel", "Messer", "Leiter", "Kelle",
  "See", "Lampe", "Blatt", "Zitrone", "Brief", "Leuchtturm", "Löwe", "Eidechse", "Landkarte",
  "Ahorn", "Maske", "Wiese", "Melone", "Mühle", "Spiegel", "Maulwurf", "Mond", "Moos", "Berg",
  "Maus", "Pilz", "Nagel", "Nadel", "Nest", "Netz", "Nuss", "Eiche", "Ruder", "Ozean", "Zwiebel",
  "Orange", "Otter", "Eule", "Ochse", "Paddel", "Palme", "Pfanne", "Panda", "Papier", "Papagei",
  "Pfirsich", "Birne", "Perle", "Stift", "Pinguin", "Pfeffer", "Klavier", "Schwein", "Kissen",
  "Rohr", "Teller", "Pflaume", "Tasche", "Teich", "Kartoffel", "Topf", "Kürbis", "Rätsel",
  "Königin", "Hase", "Radio", "Regen", "Regenbogen", "Rabe", "Ring", "Fluss", "Straße",
  "Roboter", "Fels", "Dach", "Seil", "Rose", "Salz", "Sand", "Säge", "Schal", "Schere", "Schaf",
  "Muschel", "Schiff", "Schuh", "Schaufel", "Schlitten", "Schnecke", "Schlange", "Schnee",
  "Socke", "Sofa", "Spinne", "Löffel", "Eichhörnchen", "Stern", "Stein", "Storch", "Erdbeere",
  "Sonne", "Schwan", "Schwert", "Tisch", "Zelt", "Tiger", "Tomate", "Turm", "Traktor", "Zug",
  "Baum", "Trompete", "Tulpe", "Schildkröte", "Regenschirm", "Tal", "Vase", "Geige", "Wagen",
  "Mauer", "Walnuss", "Wespe", "Wasser", "Wal", "Rad", "Fenster", "Wolf", "Holz", "Wurm",
  "Jacht", "Zebra",
]);

export const SAS_WORDS = 5;

const enc = new TextEncoder();

/**
 * `entries`: [{id, public_key}], ourselves included. Returns null with fewer than two
 * keys (nothing to compare), otherwise {en: [...], de: [...], indexes: [...]}.
 */
export async function computeSas(entries) {
  const lines = entries
    .filter((e) => typeof e.public_key === "string" && e.public_key.length > 0)
    .map((e) => `${e.id} ${e.public_key}\n`)
    .sort();
  if (lines.length < 2) return null;
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", enc.encode(`kreis-e2ee-v1 sas\n${lines.join("")}`)),
  );
  const indexes = Array.from(digest.subarray(0, SAS_WORDS));
  return {
    indexes,
    en: indexes.map((i) => WORDS_EN[i]),
    de: indexes.map((i) => WORDS_DE[i]),
  };
}
