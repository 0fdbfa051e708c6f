namespace LiveLearning.World;

/// <summary>The closed lists the world is drawn from. Names and organisations are invented; cities are real names.</summary>
internal static class Vocabulary
{
    public static readonly string[] FirstNames =
    [
        "Ada", "Alma", "Anton", "Aris", "Bela", "Boris", "Cara", "Cyril", "Dana", "Dario", "Edda", "Elio", "Elsa", "Emil",
        "Fenna", "Felix", "Greta", "Gideon", "Hana", "Hugo", "Ilse", "Ivo", "Jana", "Jonas", "Kira", "Karel", "Lena", "Leon",
        "Lina", "Luca", "Maja", "Marek", "Mila", "Milo", "Nadia", "Nils", "Nora", "Oskar", "Olga", "Otto", "Petra", "Pavel",
        "Rosa", "Ruben", "Sara", "Simon", "Sofia", "Stefan", "Tara", "Tomas", "Una", "Viktor", "Vera", "Walter", "Wanda",
        "Yara", "Yusuf", "Zora", "Zeno", "Ines",
    ];

    public static readonly string[] Surnames =
    [
        "Abend", "Albrecht", "Amsel", "Baranek", "Berger", "Blom", "Brandt", "Castell", "Corvin", "Dahl", "Delacroix", "Dorn",
        "Eklund", "Engel", "Falk", "Fennick", "Fischer", "Gallo", "Garnet", "Halden", "Hartmann", "Holt", "Iversen", "Jansen",
        "Kessler", "Kovel", "Krause", "Lang", "Larkin", "Lindqvist", "Lorenz", "Marsh", "Meyer", "Moreau", "Nagel", "Novak",
        "Olsen", "Orlov", "Pardo", "Petrov", "Quist", "Ramos", "Reiter", "Rossi", "Sandor", "Schultz", "Sorel", "Stark",
        "Tamm", "Thorne", "Ulrich", "Varga", "Vogel", "Wagner", "Weiss", "Winter", "Wolff", "Yilmaz", "Zeller", "Zimmer",
        "Ambrose", "Bellamy", "Crane", "Drummond", "Ellery", "Frost", "Grove", "Hale", "Ingram", "Jessup", "Keane", "Lowell",
        "Mercer", "Nash", "Oakley", "Prior", "Quinlan", "Rowe", "Sterling", "Tate",
    ];

    public static readonly string[] Cities =
    [
        "Lisbon", "Osaka", "Nairobi", "Oslo", "Lima", "Krakow", "Porto", "Dublin", "Seville", "Hanoi", "Tallinn", "Quito",
        "Bergen", "Leipzig", "Valencia", "Tbilisi", "Montreal", "Adelaide", "Lyon", "Bologna", "Gdansk", "Cusco", "Kyoto",
        "Malmo", "Riga", "Zagreb", "Accra", "Dakar", "Perth", "Graz",
    ];

    public static readonly string[] Universities =
    [
        "Harlow University", "Northgate University", "the University of Eastmere", "Kessington College", "Brightwater University",
        "the Ardent Institute", "Halcyon University", "the University of Westford", "Marlowe College", "Stonebridge University",
        "the Corvane Institute", "Elmhurst University", "the University of Ravensholm", "Ashcombe College", "Larkspur University",
        "the Tidewell Institute", "Pembrook University", "the University of Caldera", "Fairhaven College", "Glenmoor University",
    ];

    public static readonly string[] Fields =
    [
        "marine biology", "economics", "civil engineering", "philosophy", "astronomy", "linguistics", "chemistry",
        "architecture", "medicine", "mathematics", "geology", "music", "computer science", "history", "law", "physics",
        "psychology", "botany", "statistics", "journalism",
    ];

    public static readonly (string Name, string Industry)[] Organisations =
    [
        ("Nordwind Labs", "wind turbines"), ("Copperleaf Foods", "food"), ("Bluefin Shipping", "shipping"),
        ("Halvard Motors", "cars"), ("Quillstone Press", "publishing"), ("Orbital Dynamics", "satellites"),
        ("Greenhollow Farms", "farming"), ("Silvergate Bank", "banking"), ("Marrow Pharma", "medicines"),
        ("Tessellate Software", "software"), ("Redfern Textiles", "textiles"), ("Kestrel Airways", "air travel"),
        ("Ironbark Mining", "mining"), ("Lumen Optics", "lenses"), ("Brackwater Energy", "solar power"),
        ("Cobalt Robotics", "robots"), ("Fernway Rail", "railways"), ("Glasshouse Studios", "films"),
        ("Harbourline Insurance", "insurance"), ("Juniper Health", "hospitals"), ("Kilnworks Ceramics", "ceramics"),
        ("Lattice Networks", "telecoms"), ("Mistral Games", "video games"), ("Northstar Logistics", "logistics"),
        ("Oakhaven Furniture", "furniture"), ("Pinecrest Hotels", "hotels"), ("Quarry Stone Works", "building stone"),
        ("Riverbend Water", "water supply"), ("Saltmarsh Chemicals", "chemicals"), ("Thimble Toys", "toys"),
    ];

    public static readonly string[] Months =
    [
        "January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December",
    ];
}
