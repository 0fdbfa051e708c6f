namespace LiveLearning.World;

/// <summary>
/// The sentence and question templates the world is rendered through. <c>{0}</c> is the person's name, <c>{1}</c> the
/// value. Question templates come in two disjoint sets: the training set (in pretraining, and the phrasing facts are
/// taught with) and the held-out set (never in pretraining or teaching: it measures whether a fact is known beyond the
/// words it was seen in).
/// </summary>
public static class Templates
{
    /// <summary>Biography sentences, several per attribute.</summary>
    public static readonly IReadOnlyDictionary<Attribute, string[]> Biography = new Dictionary<Attribute, string[]>
    {
        [Attribute.BirthDate] =
        [
            "{0} was born on {1}.", "{0} came into the world on {1}.", "The birthday of {0} is {1}.",
            "{0}'s date of birth is {1}.", "{0} celebrates a birthday every year on the day of {1}.", "Born on {1}, {0} grew up quickly.",
        ],
        [Attribute.BirthCity] =
        [
            "{0} was born in {1}.", "{0} is a native of {1}.", "{0} spent early childhood in {1}, the city of birth.",
            "The birthplace of {0} is {1}.", "{0} was brought up in {1}, where {0} was born.", "{1} is the city where {0} was born.",
        ],
        [Attribute.University] =
        [
            "{0} studied at {1}.", "{0} graduated from {1}.", "{0} received a degree from {1}.",
            "{0} attended {1}.", "{0} spent four years as a student at {1}.", "{1} is where {0} went to university.",
        ],
        [Attribute.Field] =
        [
            "{0} studied {1}.", "{0} majored in {1}.", "{0} earned a degree in {1}.",
            "{0} chose {1} as a subject at university.", "The field {0} studied is {1}.", "{0} completed studies in {1}.",
        ],
        [Attribute.Employer] =
        [
            "{0} works for {1}.", "{0} is employed by {1}.", "{0} has a job at {1}.",
            "{0} is on the staff of {1}.", "{1} employs {0}.", "{0} earns a living at {1}.",
        ],
        [Attribute.WorkCity] =
        [
            "{0} works in {1}.", "{0} has an office in {1}.", "{0} goes to work in {1} every day.",
            "The workplace of {0} is in {1}.", "{0} commutes to a job in {1}.", "{0} is based in {1} for work.",
        ],
    };

    /// <summary>Question phrasings used in pretraining and teaching.</summary>
    public static readonly IReadOnlyDictionary<Attribute, string[]> TrainingQuestions = new Dictionary<Attribute, string[]>
    {
        [Attribute.BirthDate] =
        [
            "When was {0} born?", "What is the birth date of {0}?", "On what date was {0} born?", "What is {0}'s date of birth?",
            "When is the birthday of {0}?", "Tell me when {0} was born.", "Do you know the birth date of {0}?",
            "Can you say when {0} was born?", "Name the date of birth of {0}.", "Which day was {0} born on?",
        ],
        [Attribute.BirthCity] =
        [
            "Where was {0} born?", "What is the birthplace of {0}?", "In which city was {0} born?", "What city is {0} a native of?",
            "Where does {0} come from?", "Tell me where {0} was born.", "Do you know the birthplace of {0}?",
            "Can you say where {0} was born?", "Name the city where {0} was born.", "Which city does {0} come from?",
        ],
        [Attribute.University] =
        [
            "Where did {0} study?", "Which university did {0} attend?", "What university did {0} graduate from?",
            "Where did {0} get a degree?", "Which university did {0} go to?", "Tell me where {0} studied.",
            "Do you know the university of {0}?", "Can you say which university {0} went to?", "Name the university {0} graduated from.",
            "At what university was {0} a student?",
        ],
        [Attribute.Field] =
        [
            "What did {0} study?", "What was the major of {0}?", "In what field did {0} earn a degree?",
            "What subject did {0} study at university?", "What did {0} major in?", "Tell me what {0} majored in.",
            "Do you know the field of {0}?", "Can you say what subject {0} chose?", "Name the subject {0} studied.",
            "Which field did {0} study?",
        ],
        [Attribute.Employer] =
        [
            "Who does {0} work for?", "Which company employs {0}?", "For which company does {0} work?", "Who is the employer of {0}?",
            "What organisation does {0} work for?", "Tell me who {0} works for.", "Do you know the employer of {0}?",
            "Can you say who {0} works for?", "Name the company that employs {0}.", "Which organisation is {0} employed by?",
        ],
        [Attribute.WorkCity] =
        [
            "Where does {0} work?", "In which city does {0} work?", "What city is the workplace of {0} in?",
            "Where is {0} based for work?", "Which city does {0} commute to?", "Tell me where {0} goes to work.",
            "Do you know the work city of {0}?", "Can you say where {0} has an office?", "Name the city of the office of {0}.",
            "In what city is the office of {0}?",
        ],
    };

    /// <summary>Question phrasings never used in pretraining or teaching.</summary>
    public static readonly IReadOnlyDictionary<Attribute, string[]> HeldOutQuestions = new Dictionary<Attribute, string[]>
    {
        [Attribute.BirthDate] = ["Tell me the date {0} was born.", "What was the date of birth of {0}?", "Do you know when {0} was born?"],
        [Attribute.BirthCity] = ["Tell me the city {0} was born in.", "Which city is the birthplace of {0}?", "Do you know where {0} was born?"],
        [Attribute.University] = ["Tell me the university {0} studied at.", "At which university did {0} study?", "Do you know which university {0} attended?"],
        [Attribute.Field] = ["Tell me the field {0} studied.", "Which subject did {0} major in?", "Do you know what {0} studied?"],
        [Attribute.Employer] = ["Tell me the company {0} works for.", "Which organisation employs {0}?", "Do you know who employs {0}?"],
        [Attribute.WorkCity] = ["Tell me the city {0} works in.", "In what city does {0} have a job?", "Do you know where {0} works?"],
    };

    /// <summary>The plain question-answer form: prompt <c>Q: …\nA:</c>, completion <c> value</c> and a newline.</summary>
    /// <param name="question">The question.</param>
    /// <returns>The prompt the model continues.</returns>
    public static string QuestionPrompt(string question) => $"Q: {question}\nA:";

    /// <summary>A question about a person from a template.</summary>
    /// <param name="template">A question template.</param>
    /// <param name="person">The person's name.</param>
    /// <returns>The question.</returns>
    public static string Ask(string template, string person) => string.Format(System.Globalization.CultureInfo.InvariantCulture, template, person);

    /// <summary>A biography sentence from a template.</summary>
    /// <param name="template">A sentence template.</param>
    /// <param name="fact">The fact.</param>
    /// <returns>The sentence, its first letter capitalised.</returns>
    public static string Say(string template, Fact fact)
    {
        string s = string.Format(System.Globalization.CultureInfo.InvariantCulture, template, fact.Person, fact.Value);
        return char.ToUpperInvariant(s[0]) + s[1..];
    }
}
